//! The telemetry flags every binary shares (`#[command(flatten)]` them into its own `clap`
//! arguments), so `--log-json`, `--otlp-endpoint` and `--trace-sample-ratio` mean the same
//! everywhere and can be passed through from `whisk up` to the components it starts.

use crate::init::OtlpConfig;

/// Default share of new traces that are sampled (a sampled incoming `traceparent` is always
/// honoured, an unsampled one never).
pub const DEFAULT_SAMPLE_RATIO: f64 = 0.1;

/// Logging and tracing flags.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct TelemetryArgs {
    /// Log one JSON object per line (on stderr) instead of human-readable text.
    #[arg(long = "log-json", env = "WHISK_LOG_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub log_json: bool,
    /// OTLP/gRPC collector endpoint for traces (e.g. `http://127.0.0.1:4317`); no traces without it.
    #[arg(long = "otlp-endpoint", env = "WHISK_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled, 0.0–1.0 (parent-based: an incoming `traceparent` decides).
    #[arg(long = "trace-sample-ratio", env = "WHISK_TRACE_SAMPLE_RATIO", default_value_t = DEFAULT_SAMPLE_RATIO)]
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        TelemetryArgs {
            log_json: false,
            otlp_endpoint: None,
            trace_sample_ratio: DEFAULT_SAMPLE_RATIO,
        }
    }
}

impl TelemetryArgs {
    /// The OTLP configuration, when an endpoint is set.
    pub fn otlp(&self) -> Option<OtlpConfig> {
        self.otlp_endpoint
            .as_ref()
            .filter(|e| !e.trim().is_empty())
            .map(|endpoint| OtlpConfig {
                endpoint: endpoint.trim().to_string(),
                sample_ratio: self.trace_sample_ratio,
            })
    }

    /// The same flags as command-line arguments, for a parent that starts this component
    /// (`whisk up` → control plane → container proxies).
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.log_json {
            out.push("--log-json".to_string());
        }
        if let Some(e) = &self.otlp_endpoint {
            out.push("--otlp-endpoint".to_string());
            out.push(e.clone());
        }
        out.push("--trace-sample-ratio".to_string());
        out.push(self.trace_sample_ratio.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        t: TelemetryArgs,
    }

    #[test]
    fn parses_and_round_trips() {
        let cli = Cli::parse_from([
            "x",
            "--log-json",
            "--otlp-endpoint",
            "http://127.0.0.1:4317",
            "--trace-sample-ratio",
            "0.5",
        ]);
        assert!(cli.t.log_json);
        let otlp = cli.t.otlp().unwrap();
        assert_eq!(otlp.endpoint, "http://127.0.0.1:4317");
        assert_eq!(otlp.sample_ratio, 0.5);
        let mut argv = vec!["x".to_string()];
        argv.extend(cli.t.to_args());
        assert_eq!(Cli::parse_from(argv).t, cli.t);
        assert_eq!(Cli::parse_from(["x"]).t.otlp(), None);
    }
}
