//! The SRTP/SRTCP stage (`drive/src/srtp.rs`) on datagrams from anyone: never a panic, and
//! nothing made up authenticates. The first byte picks the suite; the rest is the datagram,
//! tried as it is and with a genuine packet of the same stream sent before it (so the
//! stream's context exists and its replay window is open).
#![no_main]

use isostream_drive::srtp::{Srtp, SrtpKey, SrtpSuite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, d)) = data.split_first() else {
        return;
    };
    let suite = if pick & 1 == 0 {
        SrtpSuite::AesCm128HmacSha1_80
    } else {
        SrtpSuite::AeadAes128Gcm
    };
    let key = SrtpKey::from_bytes(suite, &vec![0x42; suite.master_bytes()]).unwrap();
    let (mut tx, mut rx) = (Srtp::new(&key).unwrap(), Srtp::new(&key).unwrap());
    assert!(rx.unprotect(d).is_err(), "a made-up datagram authenticated");
    if d.len() >= 12 {
        // a genuine packet of the datagram's own header first
        if let Ok(p) = tx.protect(d) {
            assert_eq!(&rx.unprotect(&p).unwrap()[..], d);
            assert!(rx.unprotect(&p).is_err(), "a replay authenticated");
        }
        assert!(rx.unprotect(d).is_err());
    }
    let _ = tx.protect(d);
});
