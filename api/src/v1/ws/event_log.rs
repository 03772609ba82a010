//! The WebSocket events kept across restarts: every frame the hub publishes is appended
//! to a segment file before any socket can see it, and a new process reads the last
//! hour back, so that a resume token issued before a restart is still honoured.
//!
//! One line per event, `seq TAB at_ms TAB uid-as-JSON TAB frame`: frames are JSON
//! (no raw tab or newline), and the uid is quoted so that it cannot hold either. A torn
//! last line (the process died inside a write) is skipped when read back.
//!
//! Writes are not fsynced: the page cache outlives the process (a kill -9 loses
//! nothing written), not the machine. The events are a convenience copy of receipts
//! whose state is durable elsewhere (the message records, webhooks and the journal).
//! Each process writes segments of its own and reads only those of earlier ones.

use std::{
    collections::{HashMap, VecDeque},
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tracing::warn;

use super::super::time::now_us;

/// A segment is closed once it holds this much ...
const SEGMENT_BYTES: u64 = 32 * 1024 * 1024;
/// ... or is this old, whichever comes first.
const SEGMENT_SPAN: Duration = Duration::from_secs(300);
/// Segments kept at most (the oldest go first): bounds the disk and the restore.
const MAX_SEGMENTS: usize = 16;
const SUFFIX: &str = ".events";
const EPOCH_FILE: &str = "epoch";

/// Milliseconds since the Unix epoch (the API's clock, [`now_us`]).
pub(super) fn now_ms() -> i64 {
    now_us() / 1000
}

/// An event read back from an earlier process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Restored {
    pub uid: Arc<str>,
    pub seq: u64,
    pub at_ms: i64,
    pub text: String,
}

pub(super) struct EventLog {
    dir: PathBuf,
    epoch: u64,
    writer: Mutex<Writer>,
}

struct Writer {
    /// Open segment, created on the first append.
    file: Option<File>,
    opened_ms: i64,
    bytes: u64,
    /// Segments on disk, oldest first: (first event's time, path).
    segments: Vec<(i64, PathBuf)>,
    /// Warned once about a failed write (the hub goes on in memory).
    warned: bool,
}

impl EventLog {
    /// Opens (or creates) the log in `dir`: the epoch that tokens issued here carry,
    /// and the segments of earlier processes, oldest first, to read back.
    pub fn open(dir: &Path) -> io::Result<(Self, Vec<PathBuf>)> {
        fs::create_dir_all(dir)?;
        let epoch = read_or_create_epoch(dir)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(start) = name
                .to_str()
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<i64>().ok())
            {
                segments.push((start, entry.path()));
            }
        }
        segments.sort();
        let earlier = segments.iter().map(|(_, p)| p.clone()).collect();
        let log = Self {
            dir: dir.to_owned(),
            epoch,
            writer: Mutex::new(Writer {
                file: None,
                opened_ms: 0,
                bytes: 0,
                segments,
                warned: false,
            }),
        };
        Ok((log, earlier))
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Appends `lines` (whole lines, see [`line`]), in one write. A failure is
    /// warned about once; the events stay in memory.
    pub fn append(&self, lines: &[u8]) {
        let mut w = self.writer.lock();
        let now = now_ms();
        if let Err(error) = self.write(&mut w, lines, now) {
            if !w.warned {
                warn!(%error, dir = %self.dir.display(), "WebSocket events not written: resuming after a restart may miss them");
                w.warned = true;
            }
            // A fresh segment next time rather than appending after a partial line.
            w.file = None;
        }
    }

    fn write(&self, w: &mut Writer, lines: &[u8], now: i64) -> io::Result<()> {
        let span = i64::try_from(SEGMENT_SPAN.as_millis()).unwrap_or(i64::MAX);
        if w.file.is_none() || w.bytes >= SEGMENT_BYTES || now - w.opened_ms >= span {
            self.rotate(w, now)?;
        }
        let file = w.file.as_mut().expect("a segment is open after rotate");
        file.write_all(lines)?;
        w.bytes += lines.len() as u64;
        Ok(())
    }

    /// Starts a new segment and drops those that hold only events past keeping.
    fn rotate(&self, w: &mut Writer, now: i64) -> io::Result<()> {
        // Names are unique and ordered even when two segments start in one millisecond.
        let start = w.segments.last().map_or(now, |(last, _)| now.max(last + 1));
        let path = self.dir.join(format!("{start:020}{SUFFIX}"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        w.file = Some(file);
        w.opened_ms = now;
        w.bytes = 0;
        w.segments.push((start, path));
        let keep_ms = i64::try_from(super::hub::KEEP.as_millis()).unwrap_or(i64::MAX);
        // A segment's events all precede the next segment's start.
        let expired = w
            .segments
            .windows(2)
            .take_while(|pair| pair[1].0 < now - keep_ms)
            .count();
        let over = w.segments.len().saturating_sub(MAX_SEGMENTS);
        for (_, old) in w.segments.drain(..expired.max(over)) {
            if let Err(error) = fs::remove_file(&old)
                && error.kind() != io::ErrorKind::NotFound
            {
                warn!(%error, path = %old.display(), "old WebSocket events not removed");
            }
        }
        Ok(())
    }
}

/// One event as a line of the log.
pub(super) fn line(out: &mut Vec<u8>, seq: u64, at_ms: i64, uid: &str, frame: &str) {
    // Written in place: no string per event on the receipts' path.
    write!(out, "{seq}\t{at_ms}\t").expect("a Vec takes every write");
    serde_json::to_writer(&mut *out, uid).expect("a string serialises");
    out.push(b'\t');
    out.extend_from_slice(frame.as_bytes());
    out.push(b'\n');
}

fn parse_line(text: &str) -> Option<Restored> {
    let mut fields = text.splitn(4, '\t');
    let seq = fields.next()?.parse().ok()?;
    let at_ms = fields.next()?.parse().ok()?;
    let uid: String = serde_json::from_str(fields.next()?).ok()?;
    let frame = fields.next()?;
    // A torn write leaves a prefix of the frame: keep only whole JSON documents.
    serde_json::from_str::<serde::de::IgnoredAny>(frame).ok()?;
    Some(Restored {
        uid: uid.into(),
        seq,
        at_ms,
        text: frame.to_owned(),
    })
}

/// The events of `segments` from `since_ms` on, by user, in sequence order, at most
/// the newest `per_user` of each user: memory stays bounded by what the hub keeps, not
/// by what the files hold. Unreadable lines (a torn last write) are skipped; an
/// unreadable file is warned about and skipped.
pub(super) fn read_back(
    segments: &[PathBuf],
    since_ms: i64,
    per_user: usize,
) -> HashMap<Arc<str>, Vec<Restored>> {
    let mut users: HashMap<Arc<str>, VecDeque<Restored>> = HashMap::new();
    for path in segments {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(error) => {
                warn!(%error, path = %path.display(), "WebSocket events not read back");
                continue;
            }
        };
        for line in BufReader::new(file).split(b'\n') {
            let Ok(line) = line else { break };
            let Some(mut event) = std::str::from_utf8(&line).ok().and_then(parse_line) else {
                continue;
            };
            if event.at_ms < since_ms {
                continue;
            }
            // One shared name per user rather than one per event.
            if let Some((uid, _)) = users.get_key_value(&event.uid) {
                event.uid = uid.clone();
            }
            let kept = users.entry(event.uid.clone()).or_default();
            kept.push_back(event);
            if kept.len() > per_user {
                kept.pop_front();
            }
        }
    }
    users
        .into_iter()
        .map(|(uid, kept)| {
            let mut kept: Vec<Restored> = kept.into();
            kept.sort_by_key(|e| e.seq);
            (uid, kept)
        })
        .collect()
}

fn read_or_create_epoch(dir: &Path) -> io::Result<u64> {
    let path = dir.join(EPOCH_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            if let Ok(epoch) = u64::from_str_radix(text.trim(), 16) {
                return Ok(epoch);
            }
            warn!(path = %path.display(), "unreadable WebSocket epoch: starting a new one");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let epoch = rand::random::<u64>() >> 16;
    let tmp = dir.join(format!("{EPOCH_FILE}.tmp"));
    fs::write(&tmp, format!("{epoch:x}\n"))?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: &[(u64, i64, &str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, at, uid, frame) in events {
            line(&mut out, *seq, *at, uid, frame);
        }
        out
    }

    #[test]
    fn events_come_back_in_order_with_the_same_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let (log, earlier) = EventLog::open(dir.path()).expect("open");
        assert!(earlier.is_empty());
        let epoch = log.epoch();
        log.append(&lines(&[
            (5, now, "u1", r#"{"n":1}"#),
            (7, now, "u\t2", r#"{"n":"a\tb"}"#),
        ]));
        log.append(&lines(&[(6, now, "u1", r#"{"n":2}"#)]));
        drop(log);

        let (log, earlier) = EventLog::open(dir.path()).expect("reopen");
        assert_eq!(log.epoch(), epoch, "tokens of the first process stay valid");
        let back = read_back(&earlier, now - 1000, 10);
        let seqs: Vec<u64> = back["u1"].iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 6]);
        let other = &back["u\t2"];
        assert_eq!(
            (other[0].seq, other[0].text.as_str()),
            (7, r#"{"n":"a\tb"}"#)
        );
        // The second process writes a segment of its own.
        log.append(&lines(&[(8, now, "u1", r#"{"n":3}"#)]));
        let (_, earlier) = EventLog::open(dir.path()).expect("third");
        assert_eq!(earlier.len(), 2);
        assert_eq!(read_back(&earlier, now - 1000, 10)["u1"].len(), 3);
        // Only the newest of a user are kept.
        let newest: Vec<u64> = read_back(&earlier, now - 1000, 2)["u1"]
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(newest, [6, 8]);
    }

    #[test]
    fn a_torn_line_and_old_events_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = now_ms();
        let (log, _) = EventLog::open(dir.path()).expect("open");
        let mut bytes = lines(&[(1, now - 10_000, "u1", "{}"), (2, now, "u1", "{}")]);
        // The process died inside the next write.
        bytes.extend_from_slice(b"3\t");
        bytes.extend_from_slice(now.to_string().as_bytes());
        bytes.extend_from_slice(b"\t\"u1\"\t{\"type\":\"rec");
        log.append(&bytes);
        drop(log);
        let (_, earlier) = EventLog::open(dir.path()).expect("reopen");
        let back = read_back(&earlier, now - 5_000, 10);
        assert_eq!(back["u1"].iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn expired_and_surplus_segments_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, _) = EventLog::open(dir.path()).expect("open");
        let keep = i64::try_from(super::super::hub::KEEP.as_millis()).expect("ms");
        let start = now_ms() - 2 * keep;
        {
            let mut w = log.writer.lock();
            // Three segments of two hours ago, then one per minute for MAX_SEGMENTS + 2.
            for i in 0..3 {
                log.write(&mut w, b"x\n", start + i).expect("write");
                w.file = None;
            }
            let recent = now_ms() - 60_000 * (MAX_SEGMENTS as i64 + 2);
            for i in 0..(MAX_SEGMENTS as i64 + 2) {
                log.write(&mut w, b"x\n", recent + i * 60_000)
                    .expect("write");
                w.file = None;
                if i == 0 {
                    // The first two old ones hold only events past keeping; the third
                    // may hold events up to the next segment's start.
                    assert_eq!(w.segments.len(), 2, "expired segments removed");
                }
            }
            assert_eq!(w.segments.len(), MAX_SEGMENTS);
        }
        let on_disk = fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
            })
            .count();
        assert_eq!(on_disk, MAX_SEGMENTS);
    }
}
