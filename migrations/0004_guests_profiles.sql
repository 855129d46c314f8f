-- Guests and users (issue 15): guest carts, profile language, coupon names in two languages.

-- The language a user's messages and localised text follow when a request has no
-- Accept-Language. Existing users get their market's language.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'ko' CHECK (language IN ('ko', 'en'));
UPDATE users SET language = 'en' WHERE market = 'US';

-- Coupon names in English; `name` stays the Korean one. NULL (rows written by tools that predate
-- this column) reads as the Korean name.
ALTER TABLE coupons ADD COLUMN name_en TEXT CHECK (name_en IS NULL OR length(name_en) BETWEEN 1 AND 200);

-- A guest's cart: only the SHA-256 of its bearer token is stored, so the table leaks no live
-- token. Priced in the market fixed at creation. Reads ignore expired carts; the expiry worker
-- deletes them (their lines go with them).
CREATE TABLE guest_carts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  BYTEA       NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    market      TEXT        NOT NULL CHECK (market IN ('KR', 'US')),
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX guest_carts_expiry ON guest_carts (expires_at);

-- A cart line belongs to a user or to a guest cart, never both: the user cart's queries serve
-- both owners.
ALTER TABLE cart_items
    ALTER COLUMN user_id DROP NOT NULL,
    ADD COLUMN guest_cart_id BIGINT REFERENCES guest_carts (id) ON DELETE CASCADE,
    ADD CONSTRAINT cart_items_one_owner CHECK ((user_id IS NULL) <> (guest_cart_id IS NULL)),
    ADD CONSTRAINT cart_items_guest_cart_id_option_id_key UNIQUE (guest_cart_id, option_id);
