//! Segment files: replay, the live index, rollover, relocation and deletion.
//!
//! Files are `<dir>/<number:020>.log`. A segment can be deleted only when it and every
//! older segment hold no live record: a newer segment may hold the `remove` that keeps
//! an older `put` dead, so deleting out of order could bring a record back.

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use bytes::{Bytes, BytesMut};
use tracing::{error, info, warn};

use crate::{
    Damage, JournalConfig, JournalError, ReplayReport,
    live::{LiveIndex, Location},
    record::{self, Op, Record},
};

pub(crate) struct Segments {
    dir: PathBuf,
    active: File,
    active_no: u64,
    active_size: u64,
    live: LiveIndex,
    /// Live records per segment, oldest segment first. Segments still being replayed
    /// are absent until adopted, so nothing deletes or relocates them meanwhile.
    counts: BTreeMap<u64, usize>,
    /// Records ever put in each segment: with `live`, how much of the log is garbage.
    written: BTreeMap<u64, usize>,
    /// Segments that held unreadable bytes at replay, with the path of their copy (None
    /// when the copy failed): deleting one is logged, and without a copy it is renamed
    /// aside instead.
    damaged: HashMap<u64, Option<PathBuf>>,
    /// Encoded records not yet written.
    pending: BytesMut,
    /// How to take `pending`'s index changes back if its write fails.
    undo: Vec<Undo>,
    /// Test seam: fail this many of the next writes.
    #[cfg(test)]
    pub(crate) fail_writes: usize,
}

fn io_error(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.log"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(number) = stem.parse::<u64>() {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// An index change of the batch being written.
enum Undo {
    Put {
        id: u128,
        previous: Option<Location>,
    },
    Remove {
        id: u128,
        previous: Location,
    },
}

/// A stretch of a segment that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub offset: usize,
    pub len: usize,
}

/// Walk a segment's records in order. A record that does not decode is skipped by
/// resynchronising on the next offset where a whole record validates (length, shape and
/// CRC), so one damaged record costs only itself, not everything after it. Returns the
/// damaged stretches; the last one may run to the end of the file (a torn tail).
pub(crate) fn scan(bytes: &Bytes, mut visit: impl FnMut(usize, record::Entry)) -> Vec<Gap> {
    let mut gaps = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        if let Some(entry) = record::decode(bytes, at) {
            let size = entry.size;
            visit(at, entry);
            at += size;
            continue;
        }
        let next = (at + 1..bytes.len()).find(|&p| record::decode(bytes, p).is_some());
        let end = next.unwrap_or(bytes.len());
        gaps.push(Gap {
            offset: at,
            len: end - at,
        });
        at = end;
    }
    gaps
}

/// Where a damaged segment's copy goes: next to it, out of the `.log` namespace so
/// replay never reads it again.
fn damaged_path(dir: &Path, number: u64) -> PathBuf {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{number:020}.log.damaged-{now}");
    let mut path = dir.join(&base);
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    path
}

/// Keep a copy of a segment that held unreadable bytes, for whoever investigates. A
/// copy an earlier start already made (same name prefix, same size) is reused, so a
/// restart does not copy the same segment again.
fn preserve(dir: &Path, number: u64) -> Result<PathBuf, std::io::Error> {
    let from = segment_path(dir, number);
    let size = fs::metadata(&from)?.len();
    let prefix = format!("{number:020}.log.damaged-");
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with(&prefix))
            && entry.metadata().is_ok_and(|m| m.len() == size)
        {
            return Ok(entry.path());
        }
    }
    let to = damaged_path(dir, number);
    fs::copy(&from, &to)?;
    File::open(&to)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(to)
}

/// What replaying the segments that existed at open found: the writer adopts the index,
/// the caller gets the records.
pub(crate) struct Replayed {
    live: LiveIndex,
    written: BTreeMap<u64, usize>,
    damaged: HashMap<u64, Option<PathBuf>>,
    pub records: Vec<Record>,
    pub report: ReplayReport,
}

/// The index part of a replay, handed to the writer thread.
pub(crate) struct ReplayedIndex {
    live: LiveIndex,
    written: BTreeMap<u64, usize>,
    damaged: HashMap<u64, Option<PathBuf>>,
}

impl Replayed {
    pub(crate) fn split(self) -> (ReplayedIndex, Vec<Record>, ReplayReport) {
        (
            ReplayedIndex {
                live: self.live,
                written: self.written,
                damaged: self.damaged,
            },
            self.records,
            self.report,
        )
    }
}

/// Read the segments `numbers` (oldest first) of `dir`: the latest record of every id
/// not removed, oldest first. Cuts a torn tail of the newest and keeps a copy of any
/// segment with unreadable bytes. Touches no segment the writer appends to.
pub(crate) fn replay(dir: &Path, numbers: &[u64]) -> Result<Replayed, JournalError> {
    let mut live = LiveIndex::default();
    let mut records: HashMap<u128, Record> = HashMap::new();
    let mut written: BTreeMap<u64, usize> = BTreeMap::new();
    let mut report = ReplayReport {
        segments: numbers.len(),
        ..ReplayReport::default()
    };
    let mut damaged: HashMap<u64, Option<PathBuf>> = HashMap::new();
    let last = numbers.last().copied();
    let started = std::time::Instant::now();
    for &number in numbers {
        let path = segment_path(dir, number);
        let bytes = Bytes::from(fs::read(&path).map_err(|e| io_error(&path, e))?);
        let mut puts = 0usize;
        let mut gaps = scan(&bytes, |at, entry| {
            let location = Location {
                segment: number,
                offset: at as u64,
            };
            match entry.op {
                Op::Put => {
                    puts += 1;
                    live.insert(entry.id, location);
                    records.insert(
                        entry.id,
                        Record {
                            id: entry.id,
                            kind: entry.kind,
                            payload: entry.payload,
                            segment: number,
                            offset: at as u64,
                        },
                    );
                }
                Op::Remove => {
                    live.remove(&entry.id);
                    records.remove(&entry.id);
                }
            }
        });
        written.insert(number, puts);
        // A crash mid-write tears only the tail of the newest segment: a gap that runs
        // to its end, with nothing valid after it, is that incomplete write.
        let torn = match gaps.last() {
            Some(gap) if Some(number) == last && gap.offset + gap.len == bytes.len() => gaps.pop(),
            _ => None,
        };
        if !gaps.is_empty() {
            let copy = match preserve(dir, number) {
                Ok(copy) => Some(copy),
                Err(error) => {
                    error!(segment = number, %error, "cannot copy a damaged segment aside");
                    None
                }
            };
            for gap in &gaps {
                // A skipped record may have been a `remove` (its message comes back and
                // is sent again) or a `put` (that update, or message, is lost).
                warn!(
                    segment = number,
                    offset = gap.offset,
                    bytes = gap.len,
                    copy = ?copy,
                    "journal: unreadable bytes skipped, replay resumed at the next valid record"
                );
                report.damaged.push(Damage {
                    segment: number,
                    offset: gap.offset as u64,
                    bytes: gap.len as u64,
                    copy: copy.clone(),
                });
            }
            damaged.insert(number, copy);
        }
        if let Some(gap) = torn {
            warn!(
                segment = number,
                offset = gap.offset,
                bytes = gap.len,
                "journal: torn tail truncated"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            file.set_len(gap.offset as u64)
                .map_err(|e| io_error(&path, e))?;
            file.sync_all().map_err(|e| io_error(&path, e))?;
            report.torn_tail = Some(Damage {
                segment: number,
                offset: gap.offset as u64,
                bytes: gap.len as u64,
                copy: None,
            });
        }
    }
    let mut replayed: Vec<Record> = records.into_values().collect();
    replayed.sort_unstable_by_key(|r| (r.segment, r.offset));
    report.records = replayed.len();
    if !numbers.is_empty() {
        info!(
            segments = numbers.len(),
            live = replayed.len(),
            damaged = report.damaged.len(),
            skipped_bytes = report.skipped_bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal replayed"
        );
    }
    Ok(Replayed {
        live,
        written,
        damaged,
        records: replayed,
        report,
    })
}

impl Segments {
    /// Replay every segment and start a fresh active one (replay and adoption in one
    /// step, on the caller's thread).
    #[cfg(test)]
    pub fn open(config: &JournalConfig) -> Result<(Self, Vec<Record>, ReplayReport), JournalError> {
        let (mut segments, existing) = Self::start(config)?;
        let (index, records, report) = replay(&config.dir, &existing)?.split();
        segments.adopt(index)?;
        Ok((segments, records, report))
    }

    /// Start a fresh active segment after the existing ones, which are returned (oldest
    /// first) for `replay`; until `adopt`, they are neither relocated nor deleted.
    pub fn start(config: &JournalConfig) -> Result<(Self, Vec<u64>), JournalError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let existing = list_segments(&dir)?;
        let active_no = existing.last().map_or(1, |n| n + 1);
        let path = segment_path(&dir, active_no);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        sync_dir(&dir)?;
        let segments = Self {
            dir,
            active,
            active_no,
            active_size: 0,
            live: LiveIndex::default(),
            counts: BTreeMap::from([(active_no, 0)]),
            written: BTreeMap::from([(active_no, 0)]),
            damaged: HashMap::new(),
            pending: BytesMut::with_capacity(1 << 20),
            undo: Vec::new(),
            #[cfg(test)]
            fail_writes: 0,
        };
        Ok((segments, existing))
    }

    /// Take in the index of the replayed segments. Their ids cannot have been written
    /// since `start`: nobody knows them before the replay's records are handed out,
    /// which happens after this.
    pub fn adopt(&mut self, index: ReplayedIndex) -> Result<(), JournalError> {
        for (&segment, &puts) in &index.written {
            self.counts.entry(segment).or_insert(0);
            *self.written.entry(segment).or_default() += puts;
        }
        for location in index.live.values() {
            *self.counts.entry(location.segment).or_default() += 1;
        }
        // The ids are disjoint (see above).
        self.live.absorb(index.live);
        self.damaged.extend(index.damaged);
        self.delete_dead_prefix()
    }

    pub fn live(&self) -> usize {
        self.live.len()
    }

    pub fn segment_count(&self) -> usize {
        self.counts.len()
    }

    fn dec(&mut self, segment: u64) {
        if let Some(count) = self.counts.get_mut(&segment) {
            *count = count.saturating_sub(1);
        }
    }

    pub fn put(&mut self, id: u128, kind: u8, payload: &[u8]) {
        let offset = self.active_size + self.pending.len() as u64;
        record::encode(Op::Put, kind, id, payload, &mut self.pending);
        let location = Location {
            segment: self.active_no,
            offset,
        };
        let previous = self.live.insert(id, location);
        if let Some(old) = previous {
            self.dec(old.segment);
        }
        *self.counts.entry(self.active_no).or_default() += 1;
        *self.written.entry(self.active_no).or_default() += 1;
        self.undo.push(Undo::Put { id, previous });
    }

    pub fn remove(&mut self, id: u128) {
        if let Some(old) = self.live.remove(&id) {
            record::encode(Op::Remove, 0, id, &[], &mut self.pending);
            self.dec(old.segment);
            self.undo.push(Undo::Remove { id, previous: old });
        }
    }

    /// A write failed: put the index back as it was before the lost batch, so its puts
    /// (whose callers were told of the failure) do not pin a segment forever, and queue
    /// its removes again (they are idempotent) for the next write.
    fn undo_batch(&mut self) {
        let mut removes = Vec::new();
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Put { id, previous } => {
                    if let Some(location) = self.live.remove(&id) {
                        self.dec(location.segment);
                        if let Some(puts) = self.written.get_mut(&location.segment) {
                            *puts = puts.saturating_sub(1);
                        }
                    }
                    if let Some(old) = previous {
                        self.live.insert(id, old);
                        *self.counts.entry(old.segment).or_default() += 1;
                    }
                }
                Undo::Remove { id, previous } => {
                    self.live.insert(id, previous);
                    *self.counts.entry(previous.segment).or_default() += 1;
                    removes.push(id);
                }
            }
        }
        self.pending.clear();
        for id in removes {
            self.remove(id);
        }
    }

    /// Write what is pending to the active segment.
    pub fn write(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        let result = if self.fail_writes > 0 {
            self.fail_writes -= 1;
            Err(std::io::Error::other("injected write failure"))
        } else {
            self.active.write_all(&self.pending)
        };
        #[cfg(not(test))]
        let result = self.active.write_all(&self.pending);
        if let Err(error) = result {
            let path = segment_path(&self.dir, self.active_no);
            // The file may hold part of the batch: start a new segment so that no record
            // is ever appended after a torn one.
            self.pending.clear();
            let _ = self.roll();
            // Undone after the roll so the requeued removes go to the new segment.
            self.undo_batch();
            return Err(io_error(&path, error));
        }
        self.active_size += self.pending.len() as u64;
        self.pending.clear();
        self.undo.clear();
        Ok(())
    }

    /// A second handle on the active segment, for syncing from another thread.
    pub fn active_handle(&self) -> Result<File, JournalError> {
        self.active
            .try_clone()
            .map_err(|e| io_error(&segment_path(&self.dir, self.active_no), e))
    }

    pub fn active_number(&self) -> u64 {
        self.active_no
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.active
            .sync_data()
            .map_err(|e| io_error(&segment_path(&self.dir, self.active_no), e))
    }

    /// After a synced write: roll over a full segment, copy forward the live records of
    /// the oldest segment when there are too many, and delete dead segments.
    pub fn maintain(&mut self, config: &JournalConfig) -> Result<(), JournalError> {
        if self.active_size >= config.segment_bytes {
            self.roll()?;
        }
        if self.counts.len() > config.max_segments.max(2) && self.mostly_garbage() {
            self.relocate_oldest()?;
            self.write()?;
            self.sync()?;
        }
        self.delete_dead_prefix()
    }

    /// Fewer than half of the records in the files are live. Copying live records
    /// forward frees space only then: when most records are live (a day of receipt
    /// waits, say), relocation would rewrite the whole log again and again.
    fn mostly_garbage(&self) -> bool {
        let written: usize = self.written.values().sum();
        self.live.len() * 2 < written
    }

    fn roll(&mut self) -> Result<(), JournalError> {
        self.sync()?;
        let next = self.active_no + 1;
        let path = segment_path(&self.dir, next);
        self.active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        sync_dir(&self.dir)?;
        self.active_no = next;
        self.active_size = 0;
        self.counts.insert(next, 0);
        self.written.insert(next, 0);
        Ok(())
    }

    fn relocate_oldest(&mut self) -> Result<(), JournalError> {
        let Some((&oldest, &count)) = self.counts.iter().next() else {
            return Ok(());
        };
        if oldest == self.active_no || count == 0 {
            return Ok(());
        }
        let path = segment_path(&self.dir, oldest);
        let bytes = Bytes::from(fs::read(&path).map_err(|e| io_error(&path, e))?);
        let mut moved = 0usize;
        // Replay resynchronised past damage; so must this, or the live records after it
        // would never move and the segment would be read again on every group.
        let mut found = Vec::new();
        scan(&bytes, |at, entry| {
            let here = self
                .live
                .get(&entry.id)
                .is_some_and(|l| l.segment == oldest && l.offset == at as u64);
            if entry.op == Op::Put && here {
                found.push(entry);
            }
        });
        for entry in found {
            self.put(entry.id, entry.kind, &entry.payload);
            moved += 1;
        }
        info!(segment = oldest, moved, "live records copied forward");
        Ok(())
    }

    fn delete_dead_prefix(&mut self) -> Result<(), JournalError> {
        while let Some((&oldest, &count)) = self.counts.iter().next() {
            if count > 0 || oldest == self.active_no {
                break;
            }
            let path = segment_path(&self.dir, oldest);
            match self.damaged.remove(&oldest) {
                None => {}
                Some(Some(copy)) => warn!(
                    segment = oldest,
                    copy = %copy.display(),
                    "journal: deleting a finished segment that held unreadable bytes; its copy stays"
                ),
                Some(None) => {
                    // No copy was made: move the file itself aside rather than lose it.
                    // (It must leave the `.log` names either way: kept there, its old
                    // records could come back once the segments holding their removes
                    // are gone.)
                    let to = damaged_path(&self.dir, oldest);
                    match fs::rename(&path, &to) {
                        Ok(()) => {
                            warn!(segment = oldest, to = %to.display(), "journal: finished segment that held unreadable bytes moved aside");
                            self.counts.remove(&oldest);
                            self.written.remove(&oldest);
                            continue;
                        }
                        Err(e) => {
                            error!(segment = oldest, error = %e, "journal: cannot move aside a segment that held unreadable bytes; deleting it")
                        }
                    }
                }
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
            self.counts.remove(&oldest);
            self.written.remove(&oldest);
        }
        Ok(())
    }
}
