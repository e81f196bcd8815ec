//! Container logs in the CRI format the kubelet reads (`kubectl logs`):
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <line>\n`, where `P` marks a partial line (a
//! line longer than the buffer, or output cut off without a newline at exit) and `F` a full one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line written as one record; longer lines are split into `P` records as containerd does.
const MAX_LINE: usize = 16 * 1024;

/// Copies a container's stdout and stderr pipes to `log` as CRI records until both reach EOF.
/// One thread with `poll`: the monitor runs after `unshare(CLONE_NEWPID)`, and the kernel
/// refuses to create threads in a process whose children go to another PID namespace.
pub(crate) fn copy_streams(stdout: OwnedFd, stderr: OwnedFd, log: &mut File) -> io::Result<()> {
    let mut streams = [
        (Some(File::from(stdout)), Splitter::new("stdout")),
        (Some(File::from(stderr)), Splitter::new("stderr")),
    ];
    let mut buf = [0u8; 8192];
    loop {
        let open: Vec<usize> = (0..2).filter(|&i| streams[i].0.is_some()).collect();
        if open.is_empty() {
            return Ok(());
        }
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .filter_map(|&i| streams[i].0.as_ref())
            .map(|f| PollFd::new(f, PollFlags::IN))
            .collect();
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for (k, &i) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let (file, splitter) = &mut streams[i];
            let Some(f) = file.as_mut() else { continue };
            match f.read(&mut buf) {
                Ok(0) => {
                    splitter.finish(log)?;
                    *file = None;
                }
                Ok(n) => splitter.feed(&buf[..n], log)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Cuts one stream's bytes into CRI records.
struct Splitter {
    stream: &'static str,
    pending: Vec<u8>,
}

impl Splitter {
    fn new(stream: &'static str) -> Splitter {
        Splitter {
            stream,
            pending: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8], log: &mut File) -> io::Result<()> {
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
    fn finish(&mut self, log: &mut File) -> io::Result<()> {
        if !self.pending.is_empty() {
            write_records(log, self.stream, &self.pending, false)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// Writes `line` as one or more records; the last is `F` when `full`.
fn write_records(log: &mut File, stream: &str, line: &[u8], full: bool) -> io::Result<()> {
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
        let mut file = File::create(&path).expect("create");
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
}
