//! Damage in the middle of a segment: replay skips the damaged record only, resumes at
//! the next valid one, keeps a copy of the segment, and says what it skipped.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use journal::{Durability, Journal, JournalConfig};

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".damaged-"))
        .collect()
}

/// (offset, op, id) of every record of a segment file, from the documented format
/// `len u32 | crc u32 | op u8 | kind u8 | id u128 | payload`.
fn records_of(file: &Path) -> Vec<(usize, u8, u128)> {
    let bytes = std::fs::read(file).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let id = u128::from_le_bytes(bytes[at + 10..at + 26].try_into().unwrap());
        out.push((at, bytes[at + 8], id));
        at += 8 + len;
    }
    out
}

/// Flip bytes in the payload of the `put` nearest the middle of `file`; returns its id.
fn damage_a_put_in_the_middle(file: &Path) -> u128 {
    let records = records_of(file);
    let puts: Vec<_> = records.iter().filter(|r| r.1 == 1).collect();
    let &&(offset, _, id) = puts.get(puts.len() / 2).unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    for b in &mut bytes[offset + 30..offset + 34] {
        *b ^= 0xff;
    }
    std::fs::write(file, bytes).unwrap();
    id
}

fn ids(live: &[journal::Record]) -> BTreeSet<u128> {
    live.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn damage_in_the_newest_segment_loses_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig::new(dir.path(), Durability::Fsync);
    {
        let (journal, _) = Journal::open(cfg.clone()).unwrap();
        for id in 0..200u128 {
            journal
                .put(id, 1, Bytes::from(vec![b'x'; 64]))
                .await
                .unwrap();
        }
        journal.flush().await.unwrap();
    }
    let newest = segment_files(dir.path()).pop().unwrap();
    let lost = damage_a_put_in_the_middle(&newest);
    assert!((50..150).contains(&lost));

    let (journal, live) = Journal::open(cfg.clone()).unwrap();
    let expected: BTreeSet<u128> = (0..200).filter(|&id| id != lost).collect();
    assert_eq!(ids(&live), expected, "records after the damage survive too");
    assert!(live.iter().all(|r| r.payload.len() == 64));
    let report = journal.replay_report();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert!(report.torn_tail.is_none());
    let damage = &report.damaged[0];
    assert!(damage.bytes > 0);
    let copy = damage.copy.clone().expect("a copy of the damaged segment");
    assert!(copy.exists());
    assert_eq!(damaged_copies(dir.path()), vec![copy.clone()]);
    // Nothing was cut from the segment itself.
    assert!(newest.exists());
    drop(journal);

    // A restart reports the damage again but does not copy the segment again.
    let (journal, live) = Journal::open(cfg).unwrap();
    assert_eq!(ids(&live), expected);
    assert_eq!(journal.replay_report().damaged.len(), 1);
    assert_eq!(damaged_copies(dir.path()), vec![copy]);
}

#[tokio::test]
async fn damage_in_an_older_segment_keeps_the_rest_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig {
        segment_bytes: 4_096,
        max_segments: 1_000,
        ..JournalConfig::new(dir.path(), Durability::Fsync)
    };
    // Every segment holds puts of new ids and removes of ids put a little earlier
    // (often in the previous segment): losing the rest of a segment would bring back
    // finished records (a resend) as well as lose live ones.
    {
        let (journal, _) = Journal::open(cfg.clone()).unwrap();
        for id in 0..400u128 {
            journal
                .put(id, 1, Bytes::from(vec![b'y'; 100]))
                .await
                .unwrap();
            if id >= 10 && id % 7 != 0 {
                journal.remove(id - 10).await.unwrap();
            }
        }
        journal.flush().await.unwrap();
    }
    let files = segment_files(dir.path());
    assert!(files.len() >= 6, "{} segments", files.len());
    let older = &files[2];
    let lost = damage_a_put_in_the_middle(older);
    let expected: BTreeSet<u128> = (0..400u128)
        .filter(|&id| id >= 390 || id % 7 == 4) // (id + 10) % 7 == 0: never removed
        .filter(|&id| id != lost)
        .collect();

    let (journal, live) = Journal::open(cfg.clone()).unwrap();
    assert_eq!(ids(&live), expected);
    let report = journal.replay_report().clone();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    let copy = report.damaged[0].copy.clone().unwrap();
    assert!(copy.exists());
    drop(journal);

    // Segment clean-up later deletes the damaged segment (its records are finished and
    // relocated) but never its copy.
    let tight = JournalConfig {
        max_segments: 3,
        ..cfg.clone()
    };
    {
        let (journal, live) = Journal::open(tight.clone()).unwrap();
        for record in &live {
            journal.remove(record.id).await.unwrap();
        }
        for id in 1_000..1_400u128 {
            journal
                .put(id, 1, Bytes::from(vec![b'z'; 100]))
                .await
                .unwrap();
            journal.remove(id).await.unwrap();
        }
        journal
            .put(7_777, 1, Bytes::from_static(b"last"))
            .await
            .unwrap();
        journal.flush().await.unwrap();
    }
    assert!(!older.exists(), "finished damaged segment deleted");
    assert!(copy.exists(), "its copy stays");
    let (_journal, live) = Journal::open(tight).unwrap();
    assert_eq!(ids(&live), BTreeSet::from([7_777]));
}

#[tokio::test]
async fn a_torn_tail_after_damage_is_still_cut_and_records_between_survive() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = JournalConfig::new(dir.path(), Durability::Fsync);
    {
        let (journal, _) = Journal::open(cfg.clone()).unwrap();
        for id in 0..50u128 {
            journal
                .put(id, 1, Bytes::from(vec![b'x'; 32]))
                .await
                .unwrap();
        }
        journal.flush().await.unwrap();
    }
    let newest = segment_files(dir.path()).pop().unwrap();
    let lost = damage_a_put_in_the_middle(&newest);
    let clean_len = std::fs::metadata(&newest).unwrap().len();
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&newest)
            .unwrap();
        file.write_all(&[60, 0, 0, 0, 9, 9, 9, 9, 1, 1, 5]).unwrap(); // half a record
    }
    let (journal, live) = Journal::open(cfg).unwrap();
    let expected: BTreeSet<u128> = (0..50).filter(|&id| id != lost).collect();
    assert_eq!(ids(&live), expected);
    let report = journal.replay_report();
    assert_eq!(report.damaged.len(), 1);
    let torn = report.torn_tail.clone().expect("torn tail reported");
    assert_eq!((torn.offset, torn.bytes), (clean_len, 11));
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), clean_len);
}
