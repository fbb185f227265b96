//! Which instruction set a kernel runs on: detected at run time, or forced (for tests and
//! benchmarks) with the kernels' `isa` config key. An [`Isa`] other than `Scalar` exists
//! only after the CPU was found to support it, which is what makes dispatching safe.

use std::fmt;

use mlpipe_plugin_api::{Error, Result};

use crate::vector::{Element, Vector};

/// An instruction set the kernels are compiled for, checked to be supported by this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Isa(Choice);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Choice {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

/// The names the `isa` config key accepts, besides `auto`.
pub const ISA_NAMES: [&str; 4] = ["scalar", "avx2", "avx512", "neon"];

impl Isa {
    /// The portable scalar code, always available.
    pub const SCALAR: Isa = Isa(Choice::Scalar);

    /// The widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        Isa::available().pop().unwrap_or(Isa::SCALAR)
    }

    /// Every instruction set this CPU supports, narrowest (scalar) first.
    pub fn available() -> Vec<Isa> {
        let mut isas = vec![Isa::SCALAR];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                isas.push(Isa(Choice::Avx2));
            }
            if is_x86_feature_detected!("avx512f") {
                isas.push(Isa(Choice::Avx512));
            }
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            isas.push(Isa(Choice::Neon));
        }
        isas
    }

    /// The instruction set named `name` (`auto`, `scalar`, `avx2`, `avx512`, `neon`), or an error
    /// saying what this CPU lacks and what it supports.
    pub fn from_name(name: &str) -> Result<Isa> {
        Isa::from_name_among(name, &Isa::available())
    }

    fn from_name_among(name: &str, available: &[Isa]) -> Result<Isa> {
        if name == "auto" {
            return Ok(available.last().copied().unwrap_or(Isa::SCALAR));
        }
        if !ISA_NAMES.contains(&name) {
            return Err(Error::config(format!(
                "key `isa`: unknown instruction set `{name}`; use auto, {}",
                ISA_NAMES.join(", ")
            )));
        }
        available
            .iter()
            .copied()
            .find(|isa| isa.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = available.iter().map(|isa| isa.name()).collect();
                Error::config(format!(
                    "key `isa`: this CPU ({}) does not support `{name}`; it supports {} \
                     (use isa = \"auto\" to pick the widest)",
                    std::env::consts::ARCH,
                    names.join(", ")
                ))
            })
    }

    /// The name the `isa` config key uses for this instruction set.
    pub fn name(self) -> &'static str {
        match self.0 {
            Choice::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Choice::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Choice::Avx512 => "avx512",
            #[cfg(target_arch = "aarch64")]
            Choice::Neon => "neon",
        }
    }

    /// Runs `work` with the vector type of this instruction set for element `E`.
    #[inline]
    pub(crate) fn dispatch<E: Element, W: WithVector<E>>(self, work: W) -> W::Output {
        match self.0 {
            Choice::Scalar => work.run::<E>(),
            // SAFETY: `Choice::Avx2` is made only by `available`, after detecting AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Choice::Avx2 => unsafe { crate::x86::avx2(work) },
            // SAFETY: `Choice::Avx512` is made only by `available`, after detecting AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Choice::Avx512 => unsafe { crate::x86::avx512(work) },
            // SAFETY: `Choice::Neon` is made only by `available`, after detecting NEON.
            #[cfg(target_arch = "aarch64")]
            Choice::Neon => unsafe { crate::neon::neon(work) },
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kernel body generic over the vector type, run by [`Isa::dispatch`] with the vector of
/// the chosen instruction set. Implementations mark `run` `#[inline(always)]` so that the
/// body is compiled into the dispatcher's `#[target_feature]` function.
pub(crate) trait WithVector<E: Element> {
    /// What the body returns.
    type Output;
    /// Runs the body with vector type `V`.
    fn run<V: Vector<Elem = E>>(self) -> Self::Output;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for isa in Isa::available() {
            assert_eq!(Isa::from_name(isa.name()).unwrap(), isa);
        }
        assert_eq!(Isa::from_name("auto").unwrap(), Isa::detect());
        let error = Isa::from_name("sse9").unwrap_err();
        assert!(
            error.message().contains("unknown instruction set `sse9`"),
            "{error}"
        );
    }

    /// NEON is part of every ARMv8-A CPU, so on aarch64 the agreement tests always run it.
    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_is_detected_on_aarch64() {
        assert!(Isa::available().iter().any(|isa| isa.name() == "neon"));
        assert_eq!(Isa::detect().name(), "neon");
    }

    #[test]
    fn an_unsupported_isa_is_an_error_naming_what_the_cpu_has() {
        let error = Isa::from_name_among("avx512", &[Isa::SCALAR]).unwrap_err();
        assert!(
            error.message().contains("does not support `avx512`"),
            "{error}"
        );
        assert!(error.message().contains("it supports scalar"), "{error}");
        assert_eq!(
            Isa::from_name_among("auto", &[Isa::SCALAR]).unwrap(),
            Isa::SCALAR
        );
    }
}
