//! On-disk record format: `len u32 | crc32 u32 | op u8 | kind u8 | id u128 | payload`,
//! little-endian; `len` counts everything after the crc, the crc covers the same bytes.

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const HEADER: usize = 8;
const FIXED: usize = 1 + 1 + 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put = 1,
    Remove = 2,
}

/// A live record as replay returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u128,
    pub kind: u8,
    pub payload: Bytes,
    /// Where it was read from (segment number, byte offset), so a caller that cannot
    /// use the payload can say which bytes it skipped.
    pub segment: u64,
    pub offset: u64,
}

pub(crate) fn encode(op: Op, kind: u8, id: u128, payload: &[u8], dst: &mut BytesMut) -> usize {
    let len = FIXED + payload.len();
    dst.reserve(HEADER + len);
    let start = dst.len();
    dst.put_u32_le(len as u32);
    dst.put_u32_le(0);
    dst.put_u8(op as u8);
    dst.put_u8(kind);
    dst.put_u128_le(id);
    dst.put_slice(payload);
    let crc = crc32fast::hash(&dst[start + HEADER..]);
    dst[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    HEADER + len
}

/// One decoded entry and its size, or None when the bytes end or are torn/corrupt.
pub(crate) struct Entry {
    pub op: Op,
    pub kind: u8,
    pub id: u128,
    pub payload: Bytes,
    pub size: usize,
}

pub(crate) fn decode(buf: &Bytes, at: usize) -> Option<Entry> {
    let header = buf.get(at..at + HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len < FIXED {
        return None;
    }
    let body = buf.get(at + HEADER..at.checked_add(HEADER + len)?)?;
    // Cheap shape checks before the CRC: replay scans damaged stretches byte by byte
    // for the next record, and these reject most false starts without hashing.
    let op = match body[0] {
        1 => Op::Put,
        2 if len == FIXED && body[1] == 0 => Op::Remove,
        _ => return None,
    };
    if crc32fast::hash(body) != crc {
        return None;
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&body[2..18]);
    Some(Entry {
        op,
        kind: body[1],
        id: u128::from_le_bytes(id),
        payload: buf.slice(at + HEADER + FIXED..at + HEADER + len),
        size: HEADER + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tail() {
        let mut buf = BytesMut::new();
        encode(Op::Put, 3, 42, b"hello", &mut buf);
        let size = encode(Op::Remove, 0, 42, b"", &mut buf);
        let bytes = buf.freeze();
        let first = decode(&bytes, 0).unwrap();
        assert_eq!((first.op, first.kind, first.id), (Op::Put, 3, 42));
        assert_eq!(&first.payload[..], b"hello");
        let second = decode(&bytes, first.size).unwrap();
        assert_eq!(second.op, Op::Remove);
        assert_eq!(first.size + second.size, bytes.len());
        assert_eq!(second.size, size);
        // A torn record (cut short) and a flipped bit are both refused.
        let torn = bytes.slice(..bytes.len() - 1);
        assert!(decode(&torn, first.size).is_none());
        let mut flipped = bytes.to_vec();
        flipped[HEADER + 5] ^= 1;
        assert!(decode(&Bytes::from(flipped), 0).is_none());
    }
}
