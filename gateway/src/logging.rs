//! The gateway's log subscriber: `RUST_LOG` chooses the level, but no value of it can print a
//! credential. The events that may carry one (tungstenite logs the whole WebSocket upgrade
//! request at `TRACE`, see [`wsfirst::logging`]) are dropped by a filter of their own.

use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter,
    filter::{LevelFilter, filter_fn},
    fmt::MakeWriter,
    prelude::*,
};
use wsfirst::logging::may_carry_credentials;

/// The gateway's subscriber: formatted lines to `writer` at the levels of `levels` (from
/// `RUST_LOG`), without the events that [`may_carry_credentials`] names, whatever `levels` says.
pub fn subscriber<W>(levels: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // The credential filter passes on the level filter's most verbose level: without that hint
    // the process-wide maximum would be TRACE, and every `log` record of the libraries (a few
    // per WebSocket frame at trace level) would be built and filtered one by one.
    let most_verbose = levels.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_filter(levels)
        .with_filter(
            filter_fn(|event| !may_carry_credentials(event.target(), *event.level()))
                .with_max_level_hint(most_verbose),
        );
    tracing_subscriber::registry().with(logs)
}
