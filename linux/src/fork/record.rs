//! The fixed-size record the child sends the parent on the result pipe (one `write(2)` of
//! less than PIPE_BUF bytes, so it arrives whole).

/// How the child's work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildStatus {
    Ok,
    PageWriteFailed,
    TrailerFailed,
    Panicked,
}

impl std::fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChildStatus::Ok => "finished",
            ChildStatus::PageWriteFailed => "writing a page failed",
            ChildStatus::TrailerFailed => "writing the trailer failed",
            ChildStatus::Panicked => "panicked",
        })
    }
}

impl ChildStatus {
    fn code(self) -> u32 {
        match self {
            ChildStatus::Ok => 1,
            ChildStatus::PageWriteFailed => 2,
            ChildStatus::TrailerFailed => 3,
            ChildStatus::Panicked => 4,
        }
    }

    fn from_code(code: u32) -> Option<ChildStatus> {
        Some(match code {
            1 => ChildStatus::Ok,
            2 => ChildStatus::PageWriteFailed,
            3 => ChildStatus::TrailerFailed,
            4 => ChildStatus::Panicked,
            _ => return None,
        })
    }
}

const RECORD_MAGIC: u32 = 0x5750_4b46; // "WPKF"
pub(super) const RECORD_BYTES: usize = 80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChildRecord {
    pub status: ChildStatus,
    pub errno: i32,
    pub pages: u64,
    pub bytes: u64,
    pub write_ns: u64,
    pub failed_page: u64,
    /// The slow-device emulation's counters (zero without emulation).
    pub stalls: u64,
    pub stall_ns_total: u64,
    pub stall_ns_max: u64,
    pub sleep_ns_total: u64,
}

impl ChildRecord {
    pub(super) fn failed(status: ChildStatus, page: u64, errno: i32) -> ChildRecord {
        ChildRecord {
            status,
            errno,
            pages: 0,
            bytes: 0,
            write_ns: 0,
            failed_page: page,
            stalls: 0,
            stall_ns_total: 0,
            stall_ns_max: 0,
            sleep_ns_total: 0,
        }
    }

    pub(super) fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0_u8; RECORD_BYTES];
        b[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.status.code().to_le_bytes());
        b[8..12].copy_from_slice(&self.errno.to_le_bytes());
        b[16..24].copy_from_slice(&self.pages.to_le_bytes());
        b[24..32].copy_from_slice(&self.bytes.to_le_bytes());
        b[32..40].copy_from_slice(&self.write_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.failed_page.to_le_bytes());
        b[48..56].copy_from_slice(&self.stalls.to_le_bytes());
        b[56..64].copy_from_slice(&self.stall_ns_total.to_le_bytes());
        b[64..72].copy_from_slice(&self.stall_ns_max.to_le_bytes());
        b[72..80].copy_from_slice(&self.sleep_ns_total.to_le_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<ChildRecord> {
        let u32_at = |at: usize| b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
        let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        if b.len() != RECORD_BYTES || u32_at(0)? != RECORD_MAGIC {
            return None;
        }
        Some(ChildRecord {
            status: ChildStatus::from_code(u32_at(4)?)?,
            errno: u32_at(8)? as i32,
            pages: u64_at(16)?,
            bytes: u64_at(24)?,
            write_ns: u64_at(32)?,
            failed_page: u64_at(40)?,
            stalls: u64_at(48)?,
            stall_ns_total: u64_at(56)?,
            stall_ns_max: u64_at(64)?,
            sleep_ns_total: u64_at(72)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_rejects_garbage() {
        let r = ChildRecord {
            status: ChildStatus::PageWriteFailed,
            errno: 28,
            pages: 5,
            bytes: 1 << 33,
            write_ns: 77,
            failed_page: 6,
            stalls: 1,
            stall_ns_total: 2,
            stall_ns_max: 3,
            sleep_ns_total: 4,
        };
        assert_eq!(ChildRecord::decode(&r.encode()), Some(r));
        assert_eq!(ChildRecord::decode(&[0; RECORD_BYTES]), None);
        assert_eq!(ChildRecord::decode(&r.encode()[..20]), None);
    }
}
