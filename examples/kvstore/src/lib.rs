//! A small in-memory key-value store whose data lives in one memory region (an arena), as an
//! example client of `wpsnap-linux`. Records are linked by *absolute addresses*, so an image
//! of the region is usable only at the address it was taken at: the restore maps it back
//! there (`MAP_FIXED_NOREPLACE`) and checks the store's own invariants.
//!
//! Layout of the region (all little-endian u64 / i64):
//! - header: magic, bucket count, bytes of the arena in use, record count, the conserved
//!   total, then `BUCKETS` bucket heads (address of the first record, 0 for none);
//! - arena: records `{ next, key, value, checksum }`, allocated by bumping `arena_used`.
//!
//! Invariants a consistent image satisfies: every record's checksum matches, the chains
//! reach exactly `record_count` records, and the values sum to the conserved total (every
//! write is a transfer between two keys, or a new key with value 0).
//!
//! Concurrency: `STRIPES` mutexes, bucket `b` guarded by stripe `b % STRIPES`; a transfer
//! locks its two stripes in order. Pausing the store for a snapshot locks all of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Identifies a store image.
pub const MAGIC: u64 = u64::from_le_bytes(*b"KVSTORE1");
/// Hash buckets.
pub const BUCKETS: usize = 4096;
/// Lock stripes.
pub const STRIPES: usize = 64;
/// Bytes of one record.
pub const RECORD_BYTES: u64 = 32;
/// The header's fixed fields before the bucket heads.
const HEADER_FIELDS: u64 = 5;
/// Offset of the arena (the header rounded up to a page).
pub const ARENA_OFFSET: u64 = ((HEADER_FIELDS + BUCKETS as u64) * 8).div_ceil(4096) * 4096;
/// Value every initial key starts with.
pub const INITIAL_VALUE: i64 = 1000;

/// Field indices in the header.
const F_MAGIC: u64 = 0;
const F_BUCKETS: u64 = 1;
const F_ARENA_USED: u64 = 2;
const F_RECORDS: u64 = 3;
const F_TOTAL: u64 = 4;

/// The checksum of a record (splitmix64 over its fields).
pub fn record_checksum(next: u64, key: u64, value: i64) -> u64 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    mix(mix(mix(key ^ 0x9e37_79b9_7f4a_7c15) ^ value as u64) ^ next)
}

fn bucket_of(key: u64) -> usize {
    (record_checksum(0, key, 0) % BUCKETS as u64) as usize
}

/// A store living in `[base, base + len)`, which the caller maps and keeps mapped.
pub struct Store {
    base: usize,
    len: u64,
    stripes: Vec<Mutex<()>>,
}

// SAFETY: the region is plain memory; every access to a record or a bucket head happens with
// its stripe locked, and the counters are atomics.
unsafe impl Send for Store {}
// SAFETY: as above.
unsafe impl Sync for Store {}

/// Why an image is not a consistent store.
#[derive(Debug)]
pub struct Broken(pub String);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Broken {}

impl Store {
    /// Formats a fresh store in the (zeroed) region with `keys` keys of [`INITIAL_VALUE`].
    ///
    /// # Safety
    /// `[base, base + len)` is mapped, writable, zeroed, unused by anything else, and stays
    /// mapped for the life of the store.
    pub unsafe fn create(base: *mut u8, len: u64, keys: u64) -> Store {
        let store = Store { base: base as usize, len, stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() };
        store.set(F_MAGIC, MAGIC);
        store.set(F_BUCKETS, BUCKETS as u64);
        store.set(F_TOTAL, keys.wrapping_mul(INITIAL_VALUE as u64));
        for key in 0..keys {
            store.insert_locked(key, INITIAL_VALUE);
        }
        store
    }

    /// The store over an existing image at `[base, base + len)` (a restored region).
    ///
    /// # Safety
    /// As for [`Store::create`], except that the region holds an image instead of zeros.
    pub unsafe fn open(base: *mut u8, len: u64) -> Store {
        Store { base: base as usize, len, stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }

    fn word(&self, index: u64) -> &AtomicU64 {
        debug_assert!((index + 1) * 8 <= self.len);
        // SAFETY: inside the mapped region, 8-byte aligned (the base is page-aligned).
        unsafe { &*((self.base + index as usize * 8) as *const AtomicU64) }
    }
    fn get(&self, field: u64) -> u64 {
        self.word(field).load(Ordering::Acquire)
    }
    fn set(&self, field: u64, value: u64) {
        self.word(field).store(value, Ordering::Release)
    }
    fn head(&self, bucket: usize) -> &AtomicU64 {
        self.word(HEADER_FIELDS + bucket as u64)
    }
    /// The four words of the record at `addr` (an address inside the arena).
    fn record(&self, addr: u64) -> [&AtomicU64; 4] {
        let index = (addr - self.base as u64) / 8;
        [self.word(index), self.word(index + 1), self.word(index + 2), self.word(index + 3)]
    }

    /// The conserved total.
    pub fn total(&self) -> i64 {
        self.get(F_TOTAL) as i64
    }

    /// Records in the store.
    pub fn record_count(&self) -> u64 {
        self.get(F_RECORDS)
    }

    /// Locks every stripe: no write can run until the guard is dropped.
    pub fn pause(&self) -> Vec<MutexGuard<'_, ()>> {
        self.stripes.iter().map(|m| m.lock().unwrap_or_else(|e| e.into_inner())).collect()
    }

    fn lock(&self, bucket: usize) -> MutexGuard<'_, ()> {
        self.stripes[bucket % STRIPES].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds `key`'s record (its stripe locked by the caller).
    fn find(&self, key: u64) -> Option<u64> {
        let mut addr = self.head(bucket_of(key)).load(Ordering::Acquire);
        while addr != 0 {
            let [next, k, ..] = self.record(addr);
            if k.load(Ordering::Relaxed) == key {
                return Some(addr);
            }
            addr = next.load(Ordering::Relaxed);
        }
        None
    }

    /// Appends a record (its stripe locked by the caller, or no other thread running).
    /// Returns false when the arena is full.
    fn insert_locked(&self, key: u64, value: i64) -> bool {
        let addr_offset = ARENA_OFFSET + self.word(F_ARENA_USED).fetch_add(RECORD_BYTES, Ordering::AcqRel);
        if addr_offset + RECORD_BYTES > self.len {
            self.word(F_ARENA_USED).fetch_sub(RECORD_BYTES, Ordering::AcqRel);
            return false;
        }
        let addr = self.base as u64 + addr_offset;
        let head = self.head(bucket_of(key));
        let next = head.load(Ordering::Acquire);
        let [n, k, v, c] = self.record(addr);
        n.store(next, Ordering::Relaxed);
        k.store(key, Ordering::Relaxed);
        v.store(value as u64, Ordering::Relaxed);
        c.store(record_checksum(next, key, value), Ordering::Relaxed);
        head.store(addr, Ordering::Release);
        self.word(F_RECORDS).fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Inserts a new key with value 0 (the total is unchanged). False if it exists or the
    /// arena is full.
    pub fn insert(&self, key: u64) -> bool {
        let _stripe = self.lock(bucket_of(key));
        self.find(key).is_none() && self.insert_locked(key, 0)
    }

    /// Moves `amount` from key `from` to key `to`; false if either is missing.
    pub fn transfer(&self, from: u64, to: u64, amount: i64) -> bool {
        let (a, b) = (bucket_of(from) % STRIPES, bucket_of(to) % STRIPES);
        let _first = self.stripes[a.min(b)].lock().unwrap_or_else(|e| e.into_inner());
        let _second = (a != b).then(|| self.stripes[a.max(b)].lock().unwrap_or_else(|e| e.into_inner()));
        let (Some(x), Some(y)) = (self.find(from), self.find(to)) else { return false };
        if x == y {
            return true;
        }
        for (addr, delta) in [(x, -amount), (y, amount)] {
            let [n, k, v, c] = self.record(addr);
            let value = (v.load(Ordering::Relaxed) as i64).wrapping_add(delta);
            v.store(value as u64, Ordering::Relaxed);
            c.store(record_checksum(n.load(Ordering::Relaxed), k.load(Ordering::Relaxed), value), Ordering::Relaxed);
        }
        true
    }
}

/// Reads a store image held in `bytes`, which was taken at address `base`, checking every
/// invariant; returns its contents (key → value).
pub fn check_image(bytes: &[u8], base: u64) -> Result<BTreeMap<u64, i64>, Broken> {
    let word = |index: u64| -> Result<u64, Broken> {
        let at = index as usize * 8;
        let slice = bytes.get(at..at + 8).ok_or_else(|| Broken(format!("word {index} outside the image")))?;
        let mut w = [0u8; 8];
        w.copy_from_slice(slice);
        Ok(u64::from_le_bytes(w))
    };
    if word(F_MAGIC)? != MAGIC {
        return Err(Broken("bad magic: not a store image".into()));
    }
    if word(F_BUCKETS)? != BUCKETS as u64 {
        return Err(Broken("bucket count differs".into()));
    }
    let used = word(F_ARENA_USED)?;
    let records = word(F_RECORDS)?;
    let total = word(F_TOTAL)? as i64;
    let arena = (base + ARENA_OFFSET)..(base + ARENA_OFFSET + used);
    let mut contents = BTreeMap::new();
    let mut sum = 0i64;
    for bucket in 0..BUCKETS {
        let mut addr = word(HEADER_FIELDS + bucket as u64)?;
        while addr != 0 {
            if !arena.contains(&addr) || !(addr - arena.start).is_multiple_of(RECORD_BYTES) {
                return Err(Broken(format!("bucket {bucket}: record address {addr:#x} outside the arena")));
            }
            if contents.len() as u64 > records {
                return Err(Broken(format!("more records reachable than the {records} counted (a cycle?)")));
            }
            let index = (addr - base) / 8;
            let (next, key, value, checksum) =
                (word(index)?, word(index + 1)?, word(index + 2)? as i64, word(index + 3)?);
            if record_checksum(next, key, value) != checksum {
                return Err(Broken(format!("record of key {key} at {addr:#x}: checksum mismatch (a torn write)")));
            }
            if bucket_of(key) != bucket {
                return Err(Broken(format!("key {key} found in bucket {bucket}")));
            }
            if contents.insert(key, value).is_some() {
                return Err(Broken(format!("key {key} appears twice")));
            }
            sum = sum.wrapping_add(value);
            addr = next;
        }
    }
    if contents.len() as u64 != records {
        return Err(Broken(format!("{} records reachable, {records} counted", contents.len())));
    }
    if sum != total {
        return Err(Broken(format!("values sum to {sum}, the conserved total is {total}")));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_keeps_its_invariants_and_a_torn_record_is_caught() {
        let len = 1u64 << 20;
        let mut memory = vec![0u64; (len / 8) as usize];
        let base = memory.as_mut_ptr().cast::<u8>();
        // SAFETY: the vector is zeroed, 8-byte aligned, and outlives the store.
        let store = unsafe { Store::create(base, len, 100) };
        assert!(store.transfer(1, 2, 30));
        assert!(store.insert(500));
        assert!(store.transfer(500, 3, 7));
        assert!(!store.transfer(1, 999, 1));
        drop(store);
        // SAFETY: reading the vector's own bytes.
        let bytes = unsafe { std::slice::from_raw_parts(base.cast_const(), len as usize) }.to_vec();
        let contents = check_image(&bytes, base as u64).expect("consistent");
        assert_eq!(contents.len(), 101);
        assert_eq!((contents[&1], contents[&2], contents[&500], contents[&3]), (970, 1030, -7, 1007));
        // Tear one record: change a value without its checksum.
        let mut torn = bytes.clone();
        let at = ARENA_OFFSET as usize + 2 * 8;
        torn[at] ^= 1;
        assert!(check_image(&torn, base as u64).is_err());
    }
}
