//! Postgres queries of the catalog domain.
