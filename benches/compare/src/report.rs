//! The report: medians per variant and per step, ratios to the trait variant.

use crate::ctx::{Ctx, Variant};

pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

pub(crate) fn report(ctxs: &[Ctx], n: usize) {
    let reference = ctxs.iter().find(|c| c.variant == Variant::Trait);
    let (ref_set, ref_tot) =
        reference.map_or((f64::NAN, f64::NAN), |c| (median(&c.setup_ms), median(&c.setup_ms) + median(&c.teardown_ms)));
    let low_setup = ctxs.iter().find(|c| c.variant == Variant::LowStep).map_or(f64::NAN, |c| median(&c.setup_ms));
    println!("\nSW, N = {n} per variant (median per sandbox, ms)\n");
    println!(
        "| {:<16} | {:>8} | {:>8} | {:>9} | {:>8} | {:>12} | {:>11} | {:>13} | what",
        "variant", "set-up", "teardown", "lifecycle", "reaped", "set-up/trait", "total/trait", "life/low-set"
    );
    println!("|{:-<18}|{:->10}|{:->10}|{:->11}|{:->10}|{:->14}|{:->13}|{:->15}|------", "", "", "", "", "", "", "", "");
    for c in ctxs {
        let (s, t, r) = (median(&c.setup_ms), median(&c.teardown_ms), median(&c.reaped_ms));
        println!(
            "| {:<16} | {:>8.3} | {:>8.3} | {:>9.3} | {:>8.3} | {:>11.2}x | {:>10.2}x | {:>12.2}x | {}",
            c.variant.name(),
            s,
            t,
            s + t,
            r,
            s / ref_set,
            (s + t) / ref_tot,
            (s + t) / low_setup,
            c.variant.describe()
        );
    }
    println!();
    for c in ctxs {
        if c.variant == Variant::Trait {
            continue;
        }
        println!("{} / trait (set-up) = {:.1}x", c.variant.name(), median(&c.setup_ms) / ref_set);
    }
    println!("\nper-step medians (ms):");
    for c in ctxs {
        let parts: Vec<String> = c.steps.iter().map(|(k, v)| format!("{k} {:.3}", median(v))).collect();
        println!("  {:<13} {}", c.variant.name(), parts.join(" | "));
    }
}
