// SPDX-License-Identifier: MIT OR Apache-2.0
//! The two text formats scrapers read: Prometheus's 0.0.4 (what `promtool check metrics`
//! checks, and what a scraper gets unless it asks for more) and OpenMetrics 1.0.0 (what
//! Prometheus asks for first). One list of [`Family`]s makes both, so the names, help texts
//! and values cannot differ between them.

use std::fmt::Write as _;

/// What a family counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (its samples end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Constant labels with the value 1 (its samples end in `_info`; a gauge in 0.0.4).
    Info,
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// One metric family: its name without the `_total` or `_info` suffix, and its samples.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: String,
    pub help: &'static str,
    pub kind: Kind,
    /// OpenMetrics' unit, which the name ends with (`bytes`, `seconds`).
    pub unit: Option<&'static str>,
    pub samples: Vec<(Vec<(&'static str, String)>, Value)>,
}

impl Family {
    pub fn new(name: impl Into<String>, kind: Kind, help: &'static str) -> Self {
        Self { name: name.into(), help, kind, unit: None, samples: Vec::new() }
    }

    /// The same family with a unit its name ends with.
    pub fn unit(mut self, unit: &'static str) -> Self {
        debug_assert!(self.name.ends_with(unit), "{} ends with its unit", self.name);
        self.unit = Some(unit);
        self
    }

    /// The family with one sample without labels.
    pub fn one(self, value: Value) -> Self {
        self.with(Vec::new(), value)
    }

    /// The family with one sample.
    pub fn with(mut self, labels: Vec<(&'static str, String)>, value: Value) -> Self {
        self.sample(labels, value);
        self
    }

    /// Adds a sample.
    pub fn sample(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.samples.push((labels, value));
    }

    /// The name its samples have.
    fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            Kind::Info => format!("{}_info", self.name),
            Kind::Gauge => self.name.clone(),
        }
    }
}

/// The format a scraper asked for (its `Accept` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper accepts it at least as readily as the text format
    /// (Prometheus asks for it first); the text format otherwise, and when it says nothing.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let mut best = (0.0f32, Format::Prometheus);
        let mut text = 0.0f32;
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" if q > best.0 => best = (q, Format::OpenMetrics),
                "text/plain" => text = text.max(q),
                _ => {}
            }
        }
        if best.1 == Format::OpenMetrics && best.0 >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// `families` in `format`.
pub fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for f in families {
        let sample = f.sample_name();
        match format {
            Format::Prometheus => {
                let kind = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge | Kind::Info => "gauge",
                };
                let _ = writeln!(out, "# HELP {sample} {}", escape_help(f.help));
                let _ = writeln!(out, "# TYPE {sample} {kind}");
            }
            Format::OpenMetrics => {
                let kind = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Info => "info",
                };
                let _ = writeln!(out, "# TYPE {} {kind}", f.name);
                if let Some(unit) = f.unit {
                    let _ = writeln!(out, "# UNIT {} {unit}", f.name);
                }
                let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            }
        }
        for (labels, value) in &f.samples {
            out.push_str(&sample);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    let _ = write!(out, "{sep}{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = match value {
                Value::Int(v) => writeln!(out, " {v}"),
                Value::Float(v) => writeln!(out, " {v}"),
            };
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value as both formats quote it (an interface name may hold a quote).
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families() -> Vec<Family> {
        let mut copies =
            Family::new("mgm_interface_copy_bytes", Kind::Counter, "Bytes sent").unit("bytes");
        copies.sample(vec![("interface", "e\"1\\".into())], Value::Int(7));
        vec![
            copies,
            Family::new("mgm_mfes", Kind::Gauge, "MFEs").one(Value::Int(3)),
            Family::new("mgm_build", Kind::Info, "The build").one(Value::Int(1)),
            Family::new("process_cpu_seconds", Kind::Counter, "CPU")
                .unit("seconds")
                .one(Value::Float(1.5)),
        ]
    }

    #[test]
    fn the_text_format_names_its_samples_in_help_and_type() {
        let text = encode(&families(), Format::Prometheus);
        assert_eq!(
            text,
            "# HELP mgm_interface_copy_bytes_total Bytes sent\n\
             # TYPE mgm_interface_copy_bytes_total counter\n\
             mgm_interface_copy_bytes_total{interface=\"e\\\"1\\\\\"} 7\n\
             # HELP mgm_mfes MFEs\n# TYPE mgm_mfes gauge\nmgm_mfes 3\n\
             # HELP mgm_build_info The build\n# TYPE mgm_build_info gauge\nmgm_build_info 1\n\
             # HELP process_cpu_seconds_total CPU\n# TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 1.5\n"
        );
    }

    #[test]
    fn openmetrics_names_families_with_units_and_ends_with_eof() {
        let text = encode(&families(), Format::OpenMetrics);
        assert!(text.starts_with(
            "# TYPE mgm_interface_copy_bytes counter\n# UNIT mgm_interface_copy_bytes bytes\n\
             # HELP mgm_interface_copy_bytes Bytes sent\nmgm_interface_copy_bytes_total{"
        ));
        assert!(
            text.contains("# TYPE mgm_build info\n# HELP mgm_build The build\nmgm_build_info 1\n")
        );
        assert!(text.ends_with("process_cpu_seconds_total 1.5\n# EOF\n"));
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain; version=0.0.4")), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        let prefers_text = "application/openmetrics-text;q=0.2,text/plain;q=0.9";
        assert_eq!(Format::from_accept(Some(prefers_text)), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;q=0")),
            Format::Prometheus
        );
    }
}
