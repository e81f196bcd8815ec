//! Container logs in the CRI format the kubelet reads (`kubectl logs`):
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <line>\n`, where `P` marks a partial line (a
//! line longer than the buffer, or output cut off without a newline at exit) and `F` a full one.
//! A log that grows past [`MAX_BYTES`] is rotated, keeping [`MAX_FILES`] files, as the kubelet
//! does with its defaults (`containerLogMaxSize` 10Mi, `containerLogMaxFiles` 5).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line written as one record; longer lines are split into `P` records as containerd does.
const MAX_LINE: usize = 16 * 1024;

/// Size at which a container's log is rotated.
pub(crate) const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Files kept per container: the current one and the newest rotated ones.
pub(crate) const MAX_FILES: usize = 5;

/// A container's log file, rotated by size: the full file is renamed `<path>.<timestamp>`
/// (what `kubectl logs` no longer shows, kept for the node's own log collection), a new one
/// is started, and the oldest rotated files beyond [`MAX_FILES`] are deleted.
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
}

impl LogFile {
    /// Opens (appends to) the log at `path`.
    pub(crate) fn open(path: &Path) -> io::Result<LogFile> {
        Self::with_limit(path, MAX_BYTES)
    }

    fn with_limit(path: &Path, max_bytes: u64) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
        })
    }

    /// Appends whole records; rotates once the file has reached its limit.
    fn write_all(&mut self, records: &[u8]) -> io::Result<()> {
        self.file.write_all(records)?;
        self.size += records.len() as u64;
        if self.size >= self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let now = SystemTime::now();
        let stamp = rfc3339_nano(now);
        // `2026-12-07T09:30:00.123456789Z` → `20261207-093000.123456789`: sortable, unique.
        let compact: String = stamp
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == 'T' || *c == '.')
            .map(|c| if c == 'T' { '-' } else { c })
            .collect();
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{compact}"));
        std::fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        prune(&self.path, MAX_FILES - 1)
    }
}

/// Deletes the oldest rotated files of the log at `path` beyond `keep`.
fn prune(path: &Path, keep: usize) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    rotated.sort();
    let excess = rotated.len().saturating_sub(keep);
    for old in &rotated[..excess] {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Cuts one stream's bytes into CRI records.
pub(crate) struct Splitter {
    stream: &'static str,
    pending: Vec<u8>,
}

impl Splitter {
    pub(crate) fn new(stream: &'static str) -> Splitter {
        Splitter {
            stream,
            pending: Vec::new(),
        }
    }

    /// `stdout` or `stderr`.
    pub(crate) fn stream(&self) -> &'static str {
        self.stream
    }

    pub(crate) fn feed(&mut self, data: &[u8], log: &mut LogFile) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            write_records(log, self.stream, &self.pending[start..end], true)?;
            start = end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() >= MAX_LINE {
            write_records(log, self.stream, &self.pending, false)?;
            self.pending.clear();
        }
        Ok(())
    }

    /// EOF: output cut off without a newline is a partial record.
    pub(crate) fn finish(&mut self, log: &mut LogFile) -> io::Result<()> {
        if !self.pending.is_empty() {
            write_records(log, self.stream, &self.pending, false)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Writes `line` as one or more records; the last is `F` when `full`.
fn write_records(log: &mut LogFile, stream: &str, line: &[u8], full: bool) -> io::Result<()> {
    let chunks: Vec<&[u8]> = if line.is_empty() {
        vec![line]
    } else {
        line.chunks(MAX_LINE).collect()
    };
    let last = chunks.len() - 1;
    let mut out = Vec::with_capacity(line.len() + 64 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let tag = if i == last && full { "F" } else { "P" };
        out.extend_from_slice(format_record_prefix(SystemTime::now(), stream, tag).as_bytes());
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    // One write per line keeps records whole even if another writer appends to the file.
    log.write_all(&out)
}

fn format_record_prefix(t: SystemTime, stream: &str, tag: &str) -> String {
    format!("{} {stream} {tag} ", rfc3339_nano(t))
}

/// `2006-01-02T15:04:05.999999999Z` with all nine digits, as containerd writes.
pub(crate) fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        assert_eq!(rfc3339_nano(t), "2016-10-06T00:17:09.669794202Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339_nano(leap)[..10], "2000-02-29");
    }

    #[test]
    fn records_full_partial_and_long_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut file = LogFile::open(&path).expect("create");
        let long = vec![b'x'; MAX_LINE + 10];
        let mut input = b"one\n\ntwo".to_vec();
        input.push(b'\n');
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\ntail");
        let mut split = Splitter::new("stdout");
        for chunk in input.chunks(1000) {
            split.feed(chunk, &mut file).expect("feed");
        }
        split.finish(&mut file).expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        let recs: Vec<(&str, &str, &str)> = text
            .lines()
            .map(|l| {
                let mut p = l.splitn(4, ' ');
                let _ts = p.next();
                let (s, t, m) = (p.next(), p.next(), p.next());
                (s.unwrap_or(""), t.unwrap_or(""), m.unwrap_or(""))
            })
            .collect();
        assert_eq!(recs[0], ("stdout", "F", "one"));
        assert_eq!(recs[1], ("stdout", "F", ""));
        assert_eq!(recs[2], ("stdout", "F", "two"));
        assert_eq!((recs[3].1, recs[3].2.len()), ("P", MAX_LINE));
        assert_eq!(recs[4], ("stdout", "F", "xxxxxxxxxx"));
        assert_eq!(recs[5], ("stdout", "P", "tail"));
    }

    #[test]
    fn rotates_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut log = LogFile::with_limit(&path, 1000).expect("open");
        let mut split = Splitter::new("stdout");
        for i in 0..400 {
            split
                .feed(format!("line {i:04}\n").as_bytes(), &mut log)
                .expect("feed");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), MAX_FILES, "{names:?}");
        assert!(names.contains(&"0.log".to_owned()));
        // The current file has the newest lines; the rotated ones are whole records.
        let current = std::fs::read_to_string(&path).expect("read");
        assert!(
            current.is_empty() || current.ends_with("line 0399\n"),
            "{current}"
        );
        for n in names.iter().filter(|n| *n != "0.log") {
            let text = std::fs::read_to_string(dir.path().join(n)).expect("read");
            assert!(text.len() >= 1000 && text.ends_with('\n'), "{n}");
            assert!(text.lines().all(|l| l.contains(" stdout F line ")), "{n}");
        }
    }
}
