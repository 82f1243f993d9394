//! The work of one run: every manifest's `spec.slo` entries, the distinct Prometheus requests
//! they need (each (endpoint, query) pair asked once, refused URLs never), and the assembly of
//! the readings from the requests' outcomes and the file sources.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::file::{file_alert, file_remaining, read_file, FileReading, Freshness};
use super::parse::{alert_series, parse_time, remaining_value, QueryData};
use super::query::Request;
use super::reading::{self, Origin, Problems, Reading, SourceKind};
use super::spec::{entries, Entry, Source};
use super::url::{endpoint, refusal};
use super::{Options, ReadingError};
use crate::workspace::GateRoot;

/// The work of one run: each manifest's entries and the distinct requests they need.
pub(super) struct Plan {
    entries: Vec<Vec<Entry>>,
    pub(super) requests: Vec<Request>,
    /// (url as written, query) -> request index, or why the URL is unusable.
    index: HashMap<(String, String), Result<usize, ReadingError>>,
    /// (endpoint, query) -> request index: two spellings of one endpoint (a trailing `/`) are
    /// asked once.
    by_endpoint: HashMap<(String, String), usize>,
}

impl Plan {
    pub(super) fn new(manifests: &[&Value], options: &Options) -> Self {
        let entries: Vec<Vec<Entry>> = manifests.iter().map(|m| entries(m)).collect();
        let mut plan = Self {
            entries: Vec::new(),
            requests: Vec::new(),
            index: HashMap::new(),
            by_endpoint: HashMap::new(),
        };
        if !options.offline {
            for entry in entries.iter().flatten() {
                if let Ok(Source::Prometheus { url, query }) = &entry.source {
                    plan.add(url, query, options);
                    for alert in entry.alerts.iter().flatten() {
                        plan.add(url, alert, options);
                    }
                }
            }
        }
        plan.entries = entries;
        plan
    }

    fn add(&mut self, url: &str, query: &str, options: &Options) {
        let key = (url.to_string(), query.to_string());
        if self.index.contains_key(&key) {
            return;
        }
        // A URL outside the allowed list is never requested.
        let allowed = endpoint(url).and_then(|(endpoint, shown_url)| {
            match refusal(&endpoint, &shown_url, options) {
                Some(message) => Err(ReadingError::Refused(message)),
                None => Ok((endpoint, shown_url)),
            }
        });
        let slot = allowed.map(|(endpoint, shown_url)| {
            let next = self.requests.len();
            let slot = *self
                .by_endpoint
                .entry((endpoint.to_string(), query.to_string()))
                .or_insert(next);
            if slot == next {
                self.requests.push(Request {
                    endpoint,
                    shown_url,
                    query: query.to_string(),
                });
            }
            slot
        });
        self.index.insert(key, slot);
    }

    pub(super) fn needs_runtime(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Builds every reading from the request outcomes (and reads the file sources).
    pub(super) fn assemble(
        &self,
        root: &GateRoot,
        outcomes: &[Result<QueryData, ReadingError>],
        options: &Options,
    ) -> Vec<Vec<Reading>> {
        let mut files: HashMap<String, Result<FileReading, ReadingError>> = HashMap::new();
        let fresh = Freshness::new(options);
        let outcome = |url: &str, query: &str| -> Result<QueryData, ReadingError> {
            match self.index.get(&(url.to_string(), query.to_string())) {
                Some(Ok(i)) => outcomes.get(*i).cloned().unwrap_or_else(|| {
                    Err(ReadingError::Client("the query was not run".to_string()))
                }),
                Some(Err(err)) => Err(err.clone()),
                None => Err(ReadingError::Client(
                    "the query was not planned".to_string(),
                )),
            }
        };
        self.entries
            .iter()
            .map(|entries| {
                let readings = entries
                    .iter()
                    .map(|entry| {
                        let mut problems = Problems::new();
                        match &entry.source {
                            Err(err) => {
                                let remaining = reading::remaining(
                                    None,
                                    Origin::None,
                                    Err(err.clone()),
                                    &mut problems,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| {
                                        let query = a.as_ref().ok().map(String::as_str);
                                        let why = a.clone().and(Err(ReadingError::Spec(
                                            "not queried: the SLO entry has no usable source"
                                                .to_string(),
                                        )));
                                        reading::alert(
                                            query,
                                            Origin::None,
                                            why.map(|()| (0, None)),
                                            &mut problems,
                                        )
                                    })
                                    .collect();
                                reading::finish(entry, None, remaining, alerts, &problems)
                            }
                            Ok(Source::Prometheus { url, query }) => {
                                let parsed = endpoint(url);
                                let refused = parsed.as_ref().ok().and_then(|(endpoint, shown)| {
                                    refusal(endpoint, shown, options)
                                });
                                let shown = parsed
                                    .map(|(_, shown)| shown)
                                    .unwrap_or_else(|_| url.clone());
                                let origin = Origin::Url(&shown);
                                let run = |q: &str| {
                                    if let Some(message) = &refused {
                                        Err(ReadingError::Refused(message.clone()))
                                    } else if options.offline {
                                        Err(ReadingError::Offline)
                                    } else {
                                        outcome(url, q)
                                    }
                                };
                                let remaining = reading::remaining(
                                    Some(query),
                                    origin,
                                    run(query).and_then(|d| remaining_value(&d)),
                                    &mut problems,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| match a {
                                        Ok(q) => reading::alert(
                                            Some(q),
                                            origin,
                                            run(q).and_then(|d| alert_series(&d)).map(
                                                |(n, time)| {
                                                    (
                                                        n,
                                                        time.or_else(|| {
                                                            options
                                                                .time
                                                                .as_ref()
                                                                .and_then(|t| parse_time(&json!(t)))
                                                        }),
                                                    )
                                                },
                                            ),
                                            &mut problems,
                                        ),
                                        Err(err) => reading::alert(
                                            None,
                                            origin,
                                            Err(err.clone()),
                                            &mut problems,
                                        ),
                                    })
                                    .collect();
                                let source = if options.offline {
                                    SourceKind::Offline
                                } else {
                                    SourceKind::Prometheus
                                };
                                // `refused` tells the policy this is the config's refusal, not
                                // a missing value: it blocks whatever on_unknown says.
                                Reading {
                                    refused,
                                    ..reading::finish(
                                        entry,
                                        Some(source),
                                        remaining,
                                        alerts,
                                        &problems,
                                    )
                                }
                            }
                            Ok(Source::File { path, query }) => {
                                let reading = files
                                    .entry(path.clone())
                                    .or_insert_with(|| read_file(root, path, options))
                                    .clone();
                                let origin = Origin::File(path);
                                let (found_query, value) = match &reading {
                                    Ok(r) => file_remaining(r, path, query.as_deref(), &fresh),
                                    Err(err) => (query.clone(), Err(err.clone())),
                                };
                                let remaining = reading::remaining(
                                    found_query.as_deref(),
                                    origin,
                                    value,
                                    &mut problems,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| match (a, &reading) {
                                        (Ok(q), Ok(r)) => reading::alert(
                                            Some(q),
                                            origin,
                                            file_alert(r, path, q, &fresh),
                                            &mut problems,
                                        ),
                                        (Ok(q), Err(err)) => reading::alert(
                                            Some(q),
                                            origin,
                                            Err(err.clone()),
                                            &mut problems,
                                        ),
                                        (Err(err), _) => reading::alert(
                                            None,
                                            origin,
                                            Err(err.clone()),
                                            &mut problems,
                                        ),
                                    })
                                    .collect();
                                reading::finish(
                                    entry,
                                    Some(SourceKind::File),
                                    remaining,
                                    alerts,
                                    &problems,
                                )
                            }
                        }
                    })
                    .collect();
                readings
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::slo::{gather_blocking, AllowedUrl, Status};

    #[test]
    fn identical_queries_are_planned_once_and_offline_plans_none() {
        let slo = json!({"source": {"prometheus": {"url": "http://127.0.0.1:9", "query": "q"}}, "block_on_alerts": ["a", "q"]});
        let slo_slash = json!({"source": {"prometheus": {"url": "http://127.0.0.1:9/", "query": "q"}}, "block_on_alerts": ["a"]});
        let m1 = json!({"spec": {"slo": [slo]}});
        let m2 = json!({"spec": {"slo": [slo_slash]}});
        let plan = Plan::new(&[&m1, &m2], &allowing("http://127.0.0.1:9"));
        assert_eq!(plan.requests.len(), 2);
        // Nothing allowed: nothing requested.
        assert!(Plan::new(&[&m1, &m2], &Options::default())
            .requests
            .is_empty());
        let offline = Options {
            offline: true,
            ..allowing("http://127.0.0.1:9")
        };
        assert!(Plan::new(&[&m1, &m2], &offline).requests.is_empty());
    }

    #[test]
    fn offline_readings_are_unknown_with_one_reason() {
        let m = json!({"spec": {"slo": [{"name": "x", "source": {"prometheus": {"url": "http://127.0.0.1:9", "query": "q"}}, "block_on_alerts": ["a"]}]}});
        let options = Options {
            offline: true,
            ..allowing("http://127.0.0.1:9")
        };
        let root = GateRoot {
            dir: std::env::temp_dir(),
        };
        let readings = gather_blocking(&root, &[&m], &options);
        let reading = &readings[0][0];
        assert_eq!(reading.source, Some(SourceKind::Offline));
        assert_eq!(reading.status, Status::Unknown);
        assert_eq!(
            reading.reason.as_deref(),
            Some("not queried: --offline skips Prometheus")
        );
        assert_eq!(reading.remaining.query.as_deref(), Some("q"));
        assert_eq!(reading.remaining.value, None);
        assert_eq!(reading.alerts[0].firing, None);
        // The JSON the policies see: `null`s written out, no `refused`.
        let json = serde_json::to_value(reading).expect("json");
        assert_eq!(json["remaining"]["value"], Value::Null);
        assert_eq!(json["alerts"][0]["firing"], Value::Null);
        assert!(json.get("refused").is_none(), "{json}");
    }

    fn allowing(url: &str) -> Options {
        Options {
            allowed_urls: vec![AllowedUrl::parse(url).expect("allowed url")],
            ..Options::default()
        }
    }
}
