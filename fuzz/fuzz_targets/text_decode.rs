//! Inbound text decoders: none may panic on any octets, and the lossless
//! ones round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smpp_core::text::{self, gsm7, parse_udh, ucs2};

fuzz_target!(|input: &[u8]| {
    let Some((&dc, data)) = input.split_first() else {
        return;
    };
    let _ = text::decode(data, dc);
    let _ = gsm7::decode(data);

    // n up to a bit more than the data holds (to hit Truncated), fill 0..=7
    // (7 is invalid and must be refused, not panic).
    let n = usize::from(dc) % (data.len() * 8 / 7 + 3);
    let fill = (dc >> 5) % 8;
    match gsm7::unpack(data, n, fill) {
        Ok(septets) => {
            assert_eq!(septets.len(), n);
            assert!(septets.iter().all(|&s| s <= 0x7F));
            let _ = gsm7::decode(&septets);
            let packed = gsm7::pack(&septets, fill).expect("unpacked septets pack");
            assert_eq!(gsm7::unpack(&packed, n, fill).expect("repack"), septets);
        }
        Err(_) => assert!(fill > 6 || n * 7 + usize::from(fill) > data.len() * 8),
    }

    let lossy = ucs2::decode(data);
    match ucs2::decode_strict(data) {
        Ok(strict) => {
            assert_eq!(strict, lossy);
            assert_eq!(ucs2::encode(&strict), data);
        }
        Err(_) => assert!(data.len() % 2 == 1 || lossy.contains(char::REPLACEMENT_CHARACTER)),
    }

    if let Ok(udh) = parse_udh(data) {
        assert!(udh.header_len <= data.len());
        assert_eq!(udh.body, &data[udh.header_len..]);
        if let Some(c) = udh.concat {
            assert!(c.total >= 1 && c.seq >= 1 && c.seq <= c.total);
        }
        let _ = text::decode(udh.body, dc);
    }
});
