//! Logging set-up. The rules every log line follows are in README.md ("Logging"):
//! dotted field names (`order.id`), units in names (`duration_ms`), no secrets or personal data.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{self, LogFormat};

/// Installs the global subscriber once; later calls are no-ops (tests build many apps).
pub fn init(format: LogFormat) {
    let filter = config::log_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    // Colour codes only for a terminal: in files and pipes they would garble `key=value` fields.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
