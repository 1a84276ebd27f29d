//! `msrp-bench`: throughput, message-rate and memory benchmark for an MSRP
//! relay (the msrp_relay Kamailio module, or any relay given by address).
//!
//! Everything is measured in one run and compared within that run (relay
//! path against a direct A->B path using the same tool, sizes and threads),
//! because absolute figures on a shared machine move from run to run while
//! ratios taken side by side stay meaningful. Large transfers also run
//! through a plain TCP proxy process (`msrp_tools::tcpproxy`), the price of
//! one more hop that only copies bytes through. See `--help`.
//!
//! Modules: `cli` (options, `soak`), `target` (the relay under test), `mem`
//! (its workers' memory and CPU), `phases` (transfers), `rate` (message
//! rate), `scale` (--idle: many idle sessions), `report` (the summary),
//! `yardstick` (its table of ratios to the TCP proxy and to plain TCP),
//! `progress` (formatting, status line), `interrupt` (Ctrl-C stops a
//! spawned relay).

mod cli;
mod interrupt;
mod mem;
mod phases;
mod progress;
mod rate;
mod report;
mod scale;
mod target;
mod yardstick;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use msrp_tools::kamailio::find_module_so;
use msrp_tools::{idle, tcpproxy};

use cli::{Cli, Command, Opts, SoakArgs};

/// `msrp-bench soak`: see `msrp_tools::soak`. Exits 1 when anything grew,
/// was lost or was reported wrongly.
fn soak_main(a: SoakArgs) -> ExitCode {
    let so = match a.module.map_or_else(find_module_so, Ok) {
        Ok(so) => so,
        Err(e) => {
            eprintln!("msrp-bench soak: {e}");
            return ExitCode::from(2);
        }
    };
    let (duration, workers) = (Duration::from_secs(a.duration), a.workers);
    println!(
        "soak: {} s, {workers} worker(s), {}",
        duration.as_secs(),
        so.display()
    );
    match msrp_tools::soak::run(&so, duration, workers) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("soak FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench_main(o: &Opts) -> ExitCode {
    interrupt::install();
    let tty = std::io::stdout().is_terminal();
    if o.quick {
        println!("quick run (small sizes and durations): figures are only indicative");
    }
    let started = Instant::now();
    match phases::run(o, tty) {
        Ok(rep) => {
            println!();
            print!("{}", report::summary(o, &rep));
            println!("(total {:.0} s)", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(_) if interrupt::INTERRUPTED.load(Ordering::SeqCst) => {
            // The interrupt watcher is stopping the relay and exits.
            std::thread::sleep(Duration::from_secs(10));
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("msrp-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A child mode's entry point (its arguments after the mode's own).
type ChildMain = fn(&[String]) -> Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The TCP proxy baseline and the idle-session holders are this
    // executable run again (tcpproxy, idle).
    let child: Option<(&str, ChildMain)> = match args.first().map(String::as_str) {
        Some(tcpproxy::CHILD_ARG) => Some((tcpproxy::CHILD_ARG, tcpproxy::child_main)),
        Some(idle::CHILD_ARG) => Some((idle::CHILD_ARG, idle::child_main)),
        _ => None,
    };
    if let Some((arg, main)) = child {
        return match main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("msrp-bench {arg}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Usage errors exit 2, --help 0 (clap::Error::exit).
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Soak(a)) => soak_main(a),
        None => match Opts::from_args(cli.bench) {
            Ok(o) => bench_main(&o),
            Err(e) => e.exit(),
        },
    }
}
