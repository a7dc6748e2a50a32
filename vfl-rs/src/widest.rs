//! Kernels compiled for each vector width, the one in use chosen at run time.

/// `widest_vectors!(fn name(args) -> R = body, avx512 = name_avx512, avx2 = name_avx2);` defines
/// `name`, which runs `body` (an `#[inline(always)]` function of the same signature) in code
/// compiled for AVX-512 (F and VL, which bring FMA), AVX2 with FMA or the build's baseline,
/// whichever is in use (`Capability::in_use`: the CPU's widest unless capped), and the two
/// per-width functions it calls (named, so that tests can compare the widths). One generic
/// parameter with one bound is allowed. Only for lane-wise work: the compiler neither reorders
/// float additions nor fuses a multiply and an add (only an explicit `mul_add` is fused, at every
/// width), so every width gives the same bits.
macro_rules! widest_vectors {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident $(<$g:ident: $bound:path>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
            = $body:ident, avx512 = $avx512:ident, avx2 = $avx2:ident
    ) => {
        $(#[$meta])*
        $vis fn $name $(<$g: $bound>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            match $crate::widest::Capability::in_use() {
                // SAFETY: `in_use` is never wider than the CPU has (AVX-512F and VL).
                $crate::widest::Capability::Avx512 => return unsafe { $avx512 $(::<$g>)? ($($arg),*) },
                // SAFETY: as above (AVX2 and FMA).
                $crate::widest::Capability::Avx2 => return unsafe { $avx2 $(::<$g>)? ($($arg),*) },
                $crate::widest::Capability::Baseline => {}
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

/// The vector extensions the kernels may use. Normally the widest this CPU has; the environment
/// variable `VELOCITY_CPU_CAPABILITY` (`avx512`, `avx2` or `baseline`, read once) can only lower
/// it, as torch's `ATEN_CPU_CAPABILITY` does: to time on one machine the code another CPU would
/// run. Every capability gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Capability {
    /// The build's target, no run-time extension (SSE2 on x86-64).
    Baseline,
    /// AVX2 with FMA (x86-64-v3 in pulp's code).
    Avx2,
    /// AVX-512F and VL (x86-64-v4 in pulp's code, which also asks for BW, CD and DQ).
    Avx512,
}

impl Capability {
    /// The environment variable that caps the capability.
    pub const ENV: &'static str = "VELOCITY_CPU_CAPABILITY";
    const ALL: [Capability; 3] = [Capability::Avx512, Capability::Avx2, Capability::Baseline];

    /// Its name, as `VELOCITY_CPU_CAPABILITY` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Baseline => "baseline",
            Capability::Avx2 => "avx2",
            Capability::Avx512 => "avx512",
        }
    }

    /// The widest this CPU has.
    pub fn detected() -> Capability {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") {
                return Capability::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Capability::Avx2;
            }
        }
        Capability::Baseline
    }

    /// What `VELOCITY_CPU_CAPABILITY` asks for: `Ok(None)` when it is unset or empty, an error
    /// naming the accepted values and the given one when it is none of them.
    pub fn requested() -> Result<Option<Capability>, String> {
        let Some(raw) = std::env::var_os(Self::ENV) else { return Ok(None) };
        let given = raw.to_string_lossy();
        let value = given.trim();
        if value.is_empty() {
            return Ok(None);
        }
        Self::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(value)).map(Some).ok_or_else(|| {
            let names: Vec<String> = Self::ALL.iter().map(|c| format!("'{}'", c.name())).collect();
            format!("{}: expected one of {}, got {:?}", Self::ENV, names.join(", "), given)
        })
    }

    /// In use: the detected capability, lowered to the requested one (an unknown request, which
    /// the Python module refuses on import, lowers nothing).
    pub fn in_use() -> Capability {
        static IN_USE: std::sync::OnceLock<Capability> = std::sync::OnceLock::new();
        *IN_USE.get_or_init(|| {
            let detected = Self::detected();
            Self::requested().ok().flatten().map_or(detected, |asked| asked.min(detected))
        })
    }

    /// pulp's dispatcher for the capability in use.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub fn arch() -> pulp::Arch {
        match Self::in_use() {
            Capability::Avx512 => pulp::Arch::new(),
            Capability::Avx2 => pulp::x86::V3::try_new().map_or(pulp::Arch::Scalar, pulp::Arch::V3),
            Capability::Baseline => pulp::Arch::Scalar,
        }
    }

    /// pulp's dispatcher (its own choice: the cap is for x86-64).
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    pub fn arch() -> pulp::Arch {
        pulp::Arch::new()
    }
}
