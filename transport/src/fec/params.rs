//! The block geometry: `k` source packets protected by `m` repair packets.

use std::fmt;
use std::str::FromStr;

use super::error::FecError;

/// Largest number of shards (`k + m`) in one block: GF(2^8) codes have at most 255 useful rows.
pub const MAX_SHARDS: usize = 255;

/// Checks `k >= 1`, `m >= 1` and `k + m <= MAX_SHARDS`.
pub(crate) fn check_km(k: usize, m: usize) -> Result<(), FecError> {
    if k >= 1 && m >= 1 && k + m <= MAX_SHARDS {
        Ok(())
    } else {
        Err(FecError::InvalidParams { k, m })
    }
}

/// Block geometry chosen by the sender: `k` source packets are protected by `m` repair packets.
///
/// Overhead is `m / k` (extra packets per source packet); the sender holds back repair packets
/// for `k` packet durations; any `m` losses among the `k + m` packets of a block are repaired.
/// Written and parsed as `"k,m"` (e.g. `"8,2"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FecParams {
    /// Source packets per block (1..=254, `k + m <= 255`).
    pub k: u8,
    /// Repair packets per block (1..=254, `k + m <= 255`).
    pub m: u8,
}

impl FecParams {
    /// Validated parameters: `k >= 1`, `m >= 1`, `k + m <= 255`.
    pub fn new(k: u8, m: u8) -> Result<Self, FecError> {
        check_km(k as usize, m as usize)?;
        Ok(FecParams { k, m })
    }

    /// Checks parameters built directly through the public fields.
    pub fn validate(&self) -> Result<(), FecError> {
        check_km(self.k as usize, self.m as usize)
    }

    /// Packet overhead `m / k`: repair packets sent per source packet (dimensionless).
    pub fn overhead(&self) -> f64 {
        self.m as f64 / self.k as f64
    }

    /// Sender-side delay a block adds before its repair packets can leave: `k` packet durations.
    pub fn block_duration(&self, packet_duration: std::time::Duration) -> std::time::Duration {
        packet_duration * self.k as u32
    }
}

impl fmt::Display for FecParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.k, self.m)
    }
}

impl FromStr for FecParams {
    type Err = FecError;

    fn from_str(s: &str) -> Result<Self, FecError> {
        let bad = || FecError::ParseParams(s.to_string());
        let (k, m) = s.split_once(',').ok_or_else(bad)?;
        let k: u8 = k.trim().parse().map_err(|_| bad())?;
        let m: u8 = m.trim().parse().map_err(|_| bad())?;
        FecParams::new(k, m)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_validate_display_and_parse() {
        let p: FecParams = "8,2".parse().unwrap();
        assert_eq!(p, FecParams { k: 8, m: 2 });
        assert_eq!(p.to_string(), "8,2");
        assert_eq!(
            " 18 , 10 ".parse::<FecParams>().unwrap(),
            FecParams::new(18, 10).unwrap()
        );
        assert!((p.overhead() - 0.25).abs() < 1e-12);
        assert_eq!(
            p.block_duration(std::time::Duration::from_millis(5)),
            std::time::Duration::from_millis(40)
        );
        for bad in [
            "", "8", "8,", "0,2", "8,0", "200,56", "8;2", "-1,2", "256,1", "8,2,1",
        ] {
            assert!(bad.parse::<FecParams>().is_err(), "{bad:?}");
        }
        assert!(FecParams::new(254, 1).is_ok());
        assert_eq!(
            FecParams::new(254, 2),
            Err(FecError::InvalidParams { k: 254, m: 2 })
        );
    }
}
