//! Repair datagram parsing (`RepairHeader::parse`): never a panic; what it accepts is
//! consistent (k, m, index in range, the shard exactly L bytes) and writes back to the
//! datagram's header, but for the reserved byte and the marker bit it ignores.
#![no_main]

use bytes::BytesMut;
use isostream_transport::fec::{RepairHeader, REPAIR_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((h, shard)) = RepairHeader::parse(data) else {
        return;
    };
    assert!(h.is_consistent(), "{h:?}");
    assert_eq!(shard.len(), h.shard_len as usize);
    assert_eq!(data.len(), REPAIR_HEADER_LEN + shard.len());
    let mut out = BytesMut::new();
    h.write(&mut out);
    assert_eq!(out.len(), REPAIR_HEADER_LEN);
    let mut want = data[..REPAIR_HEADER_LEN].to_vec();
    want[1] &= 0x7f; // the marker bit
    want[17] = 0; // reserved
    assert_eq!(&out[..], &want[..]);
    let (again, _) = RepairHeader::parse(&[&out[..], shard].concat()).expect("written back");
    assert_eq!(again, h);
});
