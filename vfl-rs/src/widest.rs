//! Kernels compiled for the widest vectors the CPU has, chosen at run time.

/// `widest_vectors!(fn name(args) -> R = body, avx512 = name_avx512, avx2 = name_avx2);` defines
/// `name`, which runs `body` (an `#[inline(always)]` function of the same signature) in code
/// compiled for AVX-512 (F and VL, which bring FMA), AVX2 with FMA or the build's baseline,
/// whichever this CPU has, and the two per-width functions it calls (named, so that tests can
/// compare the widths). One generic parameter with one bound is allowed. Only for lane-wise work:
/// the compiler neither reorders float additions nor fuses a multiply and an add (only an explicit
/// `mul_add` is fused, at every width), so every width gives the same bits.
macro_rules! widest_vectors {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
            = $body:ident, avx512 = $avx512:ident, avx2 = $avx2:ident
    ) => {
        $(#[$meta])*
        $vis fn $name $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if $crate::widest::has_avx512() {
                    // SAFETY: the CPU has AVX-512F and VL, checked just above.
                    return unsafe { $avx512 $(::<$g>)? ($($arg),*) };
                }
                if $crate::widest::has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { $avx2 $(::<$g>)? ($($arg),*) };
                }
            }
            $body $(::<$g>)? ($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512vl")]
        unsafe fn $avx512 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            $body $(::<$g>)? ($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2 $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            $body $(::<$g>)? ($($arg),*)
        }
    };
}

/// Whether this CPU runs the AVX-512 code of `widest_vectors!` (AVX-512F and VL).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
}

/// Whether this CPU runs the AVX2 code of `widest_vectors!` (AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
