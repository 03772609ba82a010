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
use tracing::{info, warn};

use crate::{
    JournalConfig, JournalError,
    record::{self, Op, Record},
};

#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
}

pub(crate) struct Segments {
    dir: PathBuf,
    active: File,
    active_no: u64,
    active_size: u64,
    live: HashMap<u128, Location>,
    /// Live records per segment, oldest segment first.
    counts: BTreeMap<u64, usize>,
    /// Encoded records not yet written.
    pending: BytesMut,
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

impl Segments {
    /// Replay every segment and start a fresh active one.
    pub fn open(config: &JournalConfig) -> Result<(Self, Vec<Record>), JournalError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let numbers = list_segments(&dir)?;
        let mut live: HashMap<u128, Location> = HashMap::new();
        let mut records: HashMap<u128, (u64, u64, Record)> = HashMap::new();
        let last = numbers.last().copied();
        let started = std::time::Instant::now();
        for &number in &numbers {
            let path = segment_path(&dir, number);
            let bytes = Bytes::from(fs::read(&path).map_err(|e| io_error(&path, e))?);
            let mut at = 0usize;
            while at < bytes.len() {
                let Some(entry) = record::decode(&bytes, at) else {
                    break;
                };
                let location = Location {
                    segment: number,
                    offset: at as u64,
                };
                match entry.op {
                    Op::Put => {
                        live.insert(entry.id, location);
                        records.insert(
                            entry.id,
                            (
                                number,
                                at as u64,
                                Record {
                                    id: entry.id,
                                    kind: entry.kind,
                                    payload: entry.payload,
                                },
                            ),
                        );
                    }
                    Op::Remove => {
                        live.remove(&entry.id);
                        records.remove(&entry.id);
                    }
                }
                at += entry.size;
            }
            if at < bytes.len() {
                if Some(number) == last {
                    // A crash mid-write tears only the tail of the newest segment.
                    warn!(segment = number, offset = at, "torn tail truncated");
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| io_error(&path, e))?;
                    file.set_len(at as u64).map_err(|e| io_error(&path, e))?;
                    file.sync_all().map_err(|e| io_error(&path, e))?;
                } else {
                    warn!(
                        segment = number,
                        offset = at,
                        "corrupt record: rest of segment skipped"
                    );
                }
            }
        }
        let mut counts: BTreeMap<u64, usize> = numbers.iter().map(|&n| (n, 0)).collect();
        for location in live.values() {
            *counts.entry(location.segment).or_default() += 1;
        }
        let mut replayed: Vec<(u64, u64, Record)> = records.into_values().collect();
        replayed.sort_unstable_by_key(|(segment, offset, _)| (*segment, *offset));
        let replayed: Vec<Record> = replayed.into_iter().map(|(_, _, r)| r).collect();
        if !numbers.is_empty() {
            info!(
                segments = numbers.len(),
                live = replayed.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "journal replayed"
            );
        }

        let active_no = last.map_or(1, |n| n + 1);
        let path = segment_path(&dir, active_no);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        sync_dir(&dir)?;
        counts.insert(active_no, 0);
        let mut segments = Self {
            dir,
            active,
            active_no,
            active_size: 0,
            live,
            counts,
            pending: BytesMut::with_capacity(1 << 20),
        };
        segments.delete_dead_prefix()?;
        Ok((segments, replayed))
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
        if let Some(old) = self.live.insert(id, location) {
            self.dec(old.segment);
        }
        *self.counts.entry(self.active_no).or_default() += 1;
    }

    pub fn remove(&mut self, id: u128) {
        if let Some(old) = self.live.remove(&id) {
            record::encode(Op::Remove, 0, id, &[], &mut self.pending);
            self.dec(old.segment);
        }
    }

    /// Write what is pending to the active segment.
    pub fn write(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.active.write_all(&self.pending);
        if let Err(error) = result {
            let path = segment_path(&self.dir, self.active_no);
            // The file may hold part of the batch: start a new segment so that no record
            // is ever appended after a torn one.
            self.pending.clear();
            let _ = self.roll();
            return Err(io_error(&path, error));
        }
        self.active_size += self.pending.len() as u64;
        self.pending.clear();
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
        if self.counts.len() > config.max_segments.max(2) {
            self.relocate_oldest()?;
            self.write()?;
            self.sync()?;
        }
        self.delete_dead_prefix()
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
        let mut at = 0usize;
        let mut moved = 0usize;
        while let Some(entry) = record::decode(&bytes, at) {
            let here = self
                .live
                .get(&entry.id)
                .is_some_and(|l| l.segment == oldest && l.offset == at as u64);
            if entry.op == Op::Put && here {
                self.put(entry.id, entry.kind, &entry.payload);
                moved += 1;
            }
            at += entry.size;
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
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
            self.counts.remove(&oldest);
        }
        Ok(())
    }
}
