//! Printing results: a readable table or lines for people, one JSON document with `--json`.

use scheduler::HealthReport;
use scheduler::domain::{ConversationDetails, ScheduleResult};
use scheduler_server::store::Client;
use serde::Serialize;
use serde_json::{Value, json};

/// Where results go: stdout, as text or JSON.
pub(crate) struct Out {
    json: bool,
}

impl Out {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one JSON document.
    pub(crate) fn json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("mcp-scheduler: cannot print the result as JSON: {e}"),
        }
    }

    /// A one-line outcome, or its JSON form.
    pub(crate) fn message(&self, text: &str, as_json: &Value) {
        if self.json {
            self.json(as_json);
        } else {
            println!("{text}");
        }
    }

    pub(crate) fn tools(&self, tools: &[mcp_transport::Tool]) {
        if self.json {
            self.json(tools);
            return;
        }
        let rows: Vec<Vec<String>> = tools
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.description
                        .as_deref()
                        .map(first_sentence)
                        .unwrap_or_default(),
                ]
            })
            .collect();
        print!("{}", table(&["TOOL", "DESCRIPTION"], &rows));
    }

    pub(crate) fn scheduled(&self, r: &ScheduleResult) {
        if self.json {
            self.json(r);
            return;
        }
        let what = if r.created {
            "scheduled"
        } else {
            "already scheduled (same idempotency key)"
        };
        println!("{what}: {}", r.conversation_id);
        println!("  status:         {}", r.status.as_str());
        println!("  scheduled time: {}", r.scheduled_time);
    }

    pub(crate) fn details(&self, d: &ConversationDetails) {
        if self.json {
            self.json(d);
            return;
        }
        println!("conversation {}", d.conversation_id);
        println!("  status:         {}", d.status.as_str());
        println!("  topic:          {}", d.topic);
        println!("  participants:   {}", d.participants.join(", "));
        println!("  scheduled time: {}", d.scheduled_time);
        if let Some(tz) = &d.timezone {
            println!("  timezone:       {tz}");
        }
        println!("  duration:       {} min", d.duration_minutes);
        println!("  attempts:       {}", d.attempts);
        if let Some(at) = &d.started_at {
            println!("  started at:     {at}");
        }
        if let Some(at) = &d.completed_at {
            println!("  completed at:   {at}");
        }
        if let Some(e) = &d.last_error {
            println!("  last error:     {e}");
        }
    }

    pub(crate) fn conversations(&self, list: &[ConversationDetails], next_cursor: Option<&str>) {
        if self.json {
            self.json(&json!({ "conversations": list, "nextCursor": next_cursor }));
            return;
        }
        print!("{}", conversation_table(list));
        if let Some(cursor) = next_cursor {
            println!("(more: pass --all to fetch every page; next cursor {cursor})");
        }
    }

    pub(crate) fn health(&self, r: &HealthReport) {
        if self.json {
            self.json(&health_json(r));
            return;
        }
        println!("{}", if r.healthy { "healthy" } else { "UNHEALTHY" });
        match &r.tools_error {
            Some(e) => println!("  tools:  cannot list: {e}"),
            None if r.missing_tools.is_empty() => {
                println!(
                    "  tools:  {} listed, every Scheduler tool present",
                    r.tools.len()
                );
            }
            None => println!("  tools:  missing {}", r.missing_tools.join(", ")),
        }
        for e in &r.endpoints {
            match &e.error {
                None => println!(
                    "  region: {} /ping ok in {} ms",
                    e.url,
                    e.latency.as_millis()
                ),
                Some(err) => println!("  region: {} /ping FAILED: {err}", e.url),
            }
        }
        if let Some(f) = &r.failover {
            println!(
                "  failover: active region {}, {} switch(es)",
                f.active
                    .and_then(|i| f.endpoints.get(i))
                    .map_or("none yet", |e| &*e.url),
                f.switches
            );
        }
    }

    pub(crate) fn clients(&self, clients: &[Client]) {
        if self.json {
            let list: Vec<Value> = clients
                .iter()
                .map(|c| {
                    json!({
                        "client_id": c.id,
                        "name": c.name,
                        "scopes": c.scopes,
                        "disabled": c.disabled,
                        "created_at": c.created_at.to_string(),
                    })
                })
                .collect();
            self.json(&list);
            return;
        }
        let rows: Vec<Vec<String>> = clients
            .iter()
            .map(|c| {
                vec![
                    c.id.clone(),
                    c.name.clone(),
                    c.scopes.join(" "),
                    if c.disabled { "disabled" } else { "enabled" }.to_owned(),
                    c.created_at.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["CLIENT ID", "NAME", "SCOPES", "STATE", "CREATED"], &rows)
        );
    }
}

pub(crate) fn health_json(r: &HealthReport) -> Value {
    json!({
        "healthy": r.healthy,
        "tools": r.tools,
        "missing_tools": r.missing_tools,
        "tools_error": r.tools_error,
        "endpoints": r.endpoints.iter().map(|e| json!({
            "url": e.url,
            "ping_url": e.ping_url,
            "healthy": e.healthy,
            "latency_ms": e.latency.as_millis(),
            "error": e.error,
        })).collect::<Vec<_>>(),
        "failover": r.failover.as_ref().map(|f| json!({
            "active": f.active,
            "switches": f.switches,
            "endpoints": f.endpoints.iter().map(|e| json!({
                "url": &*e.url,
                "healthy": e.healthy,
                "ejections": e.ejections,
                "consecutive_failures": e.consecutive_failures,
            })).collect::<Vec<_>>(),
        })),
    })
}

pub(crate) fn conversation_table(list: &[ConversationDetails]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.conversation_id.clone(),
                c.status.as_str().to_owned(),
                c.scheduled_time.clone(),
                c.attempts.to_string(),
                c.topic.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "SCHEDULED (UTC)", "ATTEMPTS", "TOPIC"],
        &rows,
    )
}

fn first_sentence(text: &str) -> String {
    match text.find(". ") {
        Some(i) => text[..=i].to_owned(),
        None => text.to_owned(),
    }
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}
