//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.
//!
//! A handful of counters and histograms behind one mutex: a few hundred nanoseconds per request,
//! no exporter dependency, and exactly the series operators need.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds: 100 µs to 10 s.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Inner {
    /// (method, route, status) -> count
    requests: BTreeMap<(String, String, u16), u64>,
    /// route -> latency
    request_seconds: BTreeMap<String, Histogram>,
    /// (tool, outcome code or "ok") -> count
    tool_calls: BTreeMap<(String, String), u64>,
    /// tool -> latency
    tool_seconds: BTreeMap<String, Histogram>,
    /// error code -> count
    errors: BTreeMap<String, u64>,
}

/// The worker's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn record_request(
        &self,
        method: &str,
        route: &str,
        status: u16,
        elapsed: Duration,
        error_code: Option<&str>,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        inner
            .request_seconds
            .entry(route.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
        if let Some(code) = error_code {
            *inner.errors.entry(code.to_owned()).or_default() += 1;
        }
    }

    pub fn record_tool_call(&self, tool: &str, outcome: &str, elapsed: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        *inner
            .tool_calls
            .entry((tool.to_owned(), outcome.to_owned()))
            .or_default() += 1;
        inner
            .tool_seconds
            .entry(tool.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text; `live_sessions` is read at render time.
    pub fn render(&self, live_sessions: usize) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP hearth_http_requests_total HTTP requests answered.\n# TYPE hearth_http_requests_total counter\n");
        for ((method, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "hearth_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        histogram(
            &mut out,
            "hearth_http_request_duration_seconds",
            "HTTP request latency.",
            "route",
            &inner.request_seconds,
        );
        out.push_str("# HELP hearth_tool_calls_total Tool calls by outcome (ok or the error code).\n# TYPE hearth_tool_calls_total counter\n");
        for ((tool, outcome), n) in &inner.tool_calls {
            let _ = writeln!(
                out,
                "hearth_tool_calls_total{{tool=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(tool)
            );
        }
        histogram(
            &mut out,
            "hearth_tool_call_duration_seconds",
            "Tool call latency, lock wait included.",
            "tool",
            &inner.tool_seconds,
        );
        out.push_str("# HELP hearth_errors_total Error answers by code.\n# TYPE hearth_errors_total counter\n");
        for (code, n) in &inner.errors {
            let _ = writeln!(out, "hearth_errors_total{{code=\"{code}\"}} {n}");
        }
        let _ = write!(
            out,
            "# HELP hearth_sessions_live Sessions on this worker.\n# TYPE hearth_sessions_live gauge\nhearth_sessions_live {live_sessions}\n"
        );
        out
    }
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    series: &BTreeMap<String, Histogram>,
) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    for (value, h) in series {
        let value = escape(value);
        for (bound, count) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", h.count);
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request(
            "POST",
            "/v1/sessions/{id}/tools/{name}",
            200,
            Duration::from_micros(300),
            None,
        );
        m.record_request(
            "POST",
            "/v1/sessions/{id}/tools/{name}",
            404,
            Duration::from_millis(3),
            Some("file_not_found"),
        );
        m.record_tool_call("read_file", "ok", Duration::from_micros(200));
        let text = m.render(3);
        assert!(text.contains("hearth_http_requests_total{method=\"POST\",route=\"/v1/sessions/{id}/tools/{name}\",status=\"404\"} 1"));
        assert!(text.contains("hearth_http_request_duration_seconds_bucket{route=\"/v1/sessions/{id}/tools/{name}\",le=\"0.0005\"} 1"));
        assert!(text.contains("hearth_http_request_duration_seconds_bucket{route=\"/v1/sessions/{id}/tools/{name}\",le=\"0.005\"} 2"));
        assert!(text.contains("hearth_tool_calls_total{tool=\"read_file\",outcome=\"ok\"} 1"));
        assert!(text.contains("hearth_errors_total{code=\"file_not_found\"} 1"));
        assert!(text.contains("hearth_sessions_live 3"));
    }
}
