//! Sets `cfg(mnistc_arm_dsp)` on targets with the Arm DSP extension (SMLAD, SXTB16), since
//! `target_feature = "dsp"` is not visible on stable Rust: every Armv7E-M (`thumbv7em-*`) and
//! Armv7-A (`armv7-*`, `armv7a-*`, `thumbv7a-*`), and Armv8-M Mainline when built with `+dsp`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mnistc_arm_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let dsp = target.starts_with("thumbv7em")
        || target.starts_with("armv7-")
        || target.starts_with("armv7a-")
        || target.starts_with("thumbv7a-")
        || target.starts_with("thumbv7neon-")
        || (target.starts_with("thumbv8m.main") && features.split(',').any(|f| f == "dsp"));
    if dsp {
        println!("cargo::rustc-cfg=mnistc_arm_dsp");
    }
}
