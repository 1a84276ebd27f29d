//! `cross-yardstick`: what it costs to hand a 1 KiB MSRP frame to another
//! worker's connection, per frame, for the designs issue 19 item 2 weighs.
//!
//! Two threads stand for two workers: X has the frames (the sender's
//! worker), Y holds B's TCP connection (the owning worker). A sink thread
//! is B: it reads the frames and answers each with a 200 on the same
//! connection, so Y reads the 200s (as the owner would) and X must learn
//! of them. X keeps `--window` frames unanswered. Modes:
//!
//! - `local`: no crossing: X holds B's connection (the floor);
//! - `link`: today's path: X writes the frame (with `Relay-Conid`) to a
//!   unix socket pair, Y reads and parses it and writes it to B; Y parses
//!   B's 200 and writes it over the link, X reads and parses it;
//! - `ring`: X puts the frame in a shared-memory SPSC ring, Y takes it (no
//!   parse) and writes it to B; B's 200 goes back as a small record in a
//!   second ring; an eventfd only when the consumer sleeps;
//! - `direct`: X writes to B's socket itself (the fd passed once; a
//!   per-connection lock in shared memory so frames never interleave); the
//!   200 still reaches Y, which hands X a small record over a ring.
//!
//! CPU is each thread's own CPU clock (X + Y, not the sink), per frame;
//! modes alternate within each round; medians over rounds.

mod ring;
mod worlds;

use std::time::Instant;

use clap::Parser as _;

#[derive(Debug, clap::Parser)]
#[command(name = "cross-yardstick")]
struct Cli {
    /// Frames per mode and round.
    #[arg(long, default_value_t = 100_000)]
    frames: usize,
    /// Unanswered frames X keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Body bytes per frame.
    #[arg(long, default_value_t = 1024)]
    body: usize,
    /// Rounds (each runs every mode, order rotating).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

pub const MODES: [&str; 4] = ["local", "link", "ring", "direct"];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cli = Cli::parse();
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    let mut rate: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    for round in 0..cli.rounds {
        for k in 0..MODES.len() {
            let m = (k + round) % MODES.len();
            let t0 = Instant::now();
            let r = worlds::run(MODES[m], cli.frames, cli.window, cli.body)
                .unwrap_or_else(|e| panic!("{}: {e}", MODES[m]));
            let secs = t0.elapsed().as_secs_f64();
            let per = (r.x + r.y).as_secs_f64() * 1e6 / cli.frames as f64;
            println!(
                "round {} {:6}: {:.2} us CPU per frame (X {:.2} + Y {:.2}), {:.0} frames/s",
                round + 1,
                MODES[m],
                per,
                r.x.as_secs_f64() * 1e6 / cli.frames as f64,
                r.y.as_secs_f64() * 1e6 / cli.frames as f64,
                cli.frames as f64 / secs
            );
            cpu[m].push(per);
            rate[m].push(cli.frames as f64 / secs);
        }
    }
    println!(
        "median of {} rounds, {} frames of {} body bytes, window {}:",
        cli.rounds, cli.frames, cli.body, cli.window
    );
    let local = median(&mut cpu[0].clone());
    for m in 0..MODES.len() {
        let c = median(&mut cpu[m]);
        println!(
            "  {:6} {:6.2} us CPU per frame ({:.2}x local), {:8.0} frames/s",
            MODES[m],
            c,
            c / local,
            median(&mut rate[m])
        );
    }
}
