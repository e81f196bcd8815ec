//! Reading container logs kept in the CRI format (`<RFC3339Nano> <stdout|stderr> <F|P> <text>`)
//! the way `kubectl logs` asks for them: partial lines joined, `--tail`, `--since`,
//! `--timestamps`, `--limit-bytes`. Pure.

use rudder_machinery::timestamp::parse_rfc3339;

/// One line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The CRI timestamp as written (`2026-11-23T10:00:00.123456789Z`).
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its newline.
    pub text: String,
}

/// What the client asked for (`PodLogOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines at or after this Unix time.
    pub since: Option<i64>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// Parses CRI log text into lines; partial records (`P`) join the next ones up to a full (`F`)
/// record; malformed records are skipped.
pub fn parse(text: &str) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut partial: Option<LogLine> = None;
    for record in text.split('\n').filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let content = parts.next().unwrap_or("");
        let line = match partial.take() {
            Some(mut p) if p.stream == stream => {
                p.text.push_str(content);
                p
            }
            other => {
                if let Some(p) = other {
                    out.push(p);
                }
                LogLine {
                    time: time.to_owned(),
                    stream: stream.to_owned(),
                    text: content.to_owned(),
                }
            }
        };
        if tag == "P" {
            partial = Some(line);
        } else {
            out.push(line);
        }
    }
    if let Some(p) = partial {
        out.push(p);
    }
    out
}

/// The output `kubectl logs` shows for `lines` under `opts`.
pub fn render(lines: &[LogLine], opts: &LogOptions) -> String {
    let selected: Vec<&LogLine> = lines
        .iter()
        .filter(|l| {
            opts.since
                .is_none_or(|s| parse_rfc3339(&l.time).is_some_and(|t| t >= s))
        })
        .collect();
    let start = opts
        .tail_lines
        .map_or(0, |n| selected.len().saturating_sub(n));
    let mut out = String::new();
    for l in &selected[start..] {
        if opts.timestamps {
            out.push_str(&l.time);
            out.push(' ');
        }
        out.push_str(&l.text);
        out.push('\n');
    }
    if let Some(limit) = opts.limit_bytes
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-11-23T10:00:00.000000001Z stdout F hello\n\
2026-11-23T10:00:01.5Z stderr P par\n\
2026-11-23T10:00:01.6Z stderr F tial\n\
garbage\n\
2026-11-23T10:00:05Z stdout F last line\n";

    #[test]
    fn parses_and_joins_partials() {
        let lines = parse(LOG);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["hello", "partial", "last line"]);
        assert_eq!(lines[1].stream, "stderr");
    }

    #[test]
    fn renders_by_options() {
        let lines = parse(LOG);
        let since = parse_rfc3339("2026-11-23T10:00:01Z");
        let cases = [
            (LogOptions::default(), "hello\npartial\nlast line\n"),
            (
                LogOptions {
                    tail_lines: Some(1),
                    ..Default::default()
                },
                "last line\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                },
                "",
            ),
            (
                LogOptions {
                    since,
                    ..Default::default()
                },
                "partial\nlast line\n",
            ),
            (
                LogOptions {
                    limit_bytes: Some(8),
                    ..Default::default()
                },
                "hello\npa",
            ),
            (
                LogOptions {
                    tail_lines: Some(1),
                    timestamps: true,
                    ..Default::default()
                },
                "2026-11-23T10:00:05Z last line\n",
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(render(&lines, &opts), want, "{opts:?}");
        }
    }
}
