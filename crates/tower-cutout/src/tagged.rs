//! Boxed errors that allocate nothing: a zero-sized error whose value is the address its
//! `Box` points at.
//!
//! `Box::new` of a zero-sized value does not allocate, and a `Box` of a zero-sized type may
//! point at any non-null, aligned address (the `Box` docs' memory-layout section). So a
//! rejection is boxed as a zero-sized error whose box points at an address that encodes it
//! ([`Code`]), and the error's `&self` methods decode their own address. Only a reference
//! to the boxed value has that address: a value moved out of its box (`*boxed`), or copied
//! elsewhere (tonic moves an error into an `Arc`), has some other address, which decodes
//! as `None`, never as a wrong value.
//!
//! On 64-bit targets the address is [`MAGIC`] in bits 52..=63, the kind in bits 50..=51, a
//! flag in bit 49 and the payload in bits 0..=48. No reference to a real object has those
//! top bits: bit 63 is set, which no user-space address has on x86-64 (canonical addresses
//! with bit 63 set are the kernel's, also with 5-level paging) and on AArch64 (user
//! addresses are below 2^52, with the top byte free for tags under TBI/MTE: bits 52..=55
//! are then still zero, and the magic sets them). Elsewhere the code is stored in the value
//! itself, and the box allocates.
//!
//! All the unsafe code of the crate's error types is here.

/// A rejection's code: a kind (0..=3), a flag, and a payload (saturated to
/// [`MAX_PAYLOAD`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Code {
    pub(crate) kind: u8,
    pub(crate) flag: bool,
    pub(crate) payload: u64,
}

/// The largest payload a code carries: `2^49 - 1` (in milliseconds, 17 800 years).
pub(crate) const MAX_PAYLOAD: u64 = (1 << 49) - 1;

impl Code {
    /// A code; `kind` is taken modulo 4, `payload` saturates at [`MAX_PAYLOAD`].
    #[inline]
    pub(crate) fn new(kind: u8, flag: bool, payload: u64) -> Self {
        Self {
            kind: kind & 0b11,
            flag,
            payload: payload.min(MAX_PAYLOAD),
        }
    }
}

/// The field an address-coded error holds: zero-sized on 64-bit targets, the [`Code`]
/// itself elsewhere.
#[derive(Clone, Copy)]
pub(crate) struct Slot {
    #[cfg(not(target_pointer_width = "64"))]
    code: Code,
}

#[cfg(target_pointer_width = "64")]
mod imp {
    use super::{Code, Slot};

    /// Bits 52..=63 of every coded address: bit 63 and bits 52..=55 set.
    const MAGIC: usize = 0xCB7;
    const MAGIC_SHIFT: u32 = 52;
    const KIND_SHIFT: u32 = 50;
    const FLAG: usize = 1 << 49;

    #[inline]
    fn encode(code: Code) -> usize {
        (MAGIC << MAGIC_SHIFT)
            | (usize::from(code.kind & 0b11) << KIND_SHIFT)
            | if code.flag { FLAG } else { 0 }
            // `payload <= MAX_PAYLOAD < 2^49`: it fits below the flag.
            | (code.payload.min(super::MAX_PAYLOAD) as usize)
    }

    #[inline]
    fn decode(address: usize) -> Option<Code> {
        if address >> MAGIC_SHIFT != MAGIC {
            return None;
        }
        Some(Code {
            kind: ((address >> KIND_SHIFT) & 0b11) as u8,
            flag: address & FLAG != 0,
            payload: (address & (FLAG - 1)) as u64,
        })
    }

    /// `make(slot)` in a box that points at the address coding `code`: no allocation.
    #[inline]
    pub(crate) fn boxed<T>(code: Code, make: impl FnOnce(Slot) -> T) -> Box<T> {
        const {
            assert!(size_of::<T>() == 0 && align_of::<T>() == 1);
        }
        let value = make(Slot {});
        let ptr = std::ptr::without_provenance_mut::<T>(encode(code));
        // SAFETY: `T` is zero-sized with alignment 1 (checked above), so any non-null
        // address is valid for its reads and writes and is aligned; the address is not
        // null (the magic bits are set). A `Box` of a zero-sized type may point at any
        // such address: dropping it frees nothing (the `Box` docs' memory-layout section,
        // which suggests `NonNull::dangling`, an address without provenance like this one).
        unsafe {
            ptr.write(value);
            Box::from_raw(ptr)
        }
    }

    /// The code of the value `slot` belongs to, if `slot` is where [`boxed`] put it.
    #[inline]
    pub(crate) fn read(slot: &Slot) -> Option<Code> {
        // A zero-sized field's address is its zero-sized owner's.
        decode(std::ptr::from_ref(slot).addr())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_round_trip_through_addresses() {
            for kind in 0..4 {
                for flag in [false, true] {
                    for payload in [0, 1, 999, 3_600_000, super::super::MAX_PAYLOAD] {
                        let code = Code::new(kind, flag, payload);
                        assert_eq!(decode(encode(code)), Some(code));
                    }
                }
            }
            assert_eq!(
                Code::new(1, false, u64::MAX).payload,
                super::super::MAX_PAYLOAD
            );
        }

        #[test]
        fn real_addresses_do_not_decode() {
            let on_stack = 0u8;
            let on_heap = Box::new(0u64);
            for address in [
                std::ptr::from_ref(&on_stack).addr(),
                std::ptr::from_ref(&*on_heap).addr(),
                1,
                usize::MAX >> 1,
                // A tagged AArch64 (TBI/MTE) heap pointer, a kernel address.
                0xB400_007F_FFFF_0000,
                0xFFFF_8000_0000_0000,
            ] {
                assert_eq!(decode(address), None, "{address:#x}");
            }
        }
    }
}

#[cfg(not(target_pointer_width = "64"))]
mod imp {
    use super::{Code, Slot};

    /// `make(slot)` in a box: one allocation; the code lives in the value.
    pub(crate) fn boxed<T>(code: Code, make: impl FnOnce(Slot) -> T) -> Box<T> {
        Box::new(make(Slot { code }))
    }

    /// The code stored in `slot`.
    #[inline]
    pub(crate) fn read(slot: &Slot) -> Option<Code> {
        Some(slot.code)
    }
}

pub(crate) use imp::{boxed, read};
