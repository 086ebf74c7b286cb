//! Writes the contract data the vendor fakes are checked against (`tests/contract/`) from the
//! vendors' full published specs, or with `--check` says whether the committed data is what
//! those specs give. `cargo run -p tollgate-fakes --bin contract-data -- --specs DIR [--check]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tollgate_fakes::contract::generate;

#[derive(Parser)]
#[command(about = "Generate (or check) the contract data in tests/contract from the vendor specs")]
struct Args {
    /// The folder of the vendors' published specs.
    #[arg(long, env = "TOLLGATE_SPECS_DIR")]
    specs: PathBuf,
    /// Where the data goes.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/contract"))]
    out: PathBuf,
    /// Compare with what is there instead of writing; exit 1 on any difference.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let files = match generate::files(&args.specs) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("contract-data: {e}");
            return ExitCode::from(2);
        }
    };
    let mut drifted = Vec::new();
    for (name, text) in &files {
        let path = args.out.join(name);
        if args.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(path.display().to_string());
            }
        } else if let Err(e) = std::fs::write(&path, text) {
            eprintln!("contract-data: {}: {e}", path.display());
            return ExitCode::from(2);
        } else {
            println!("wrote {}", path.display());
        }
    }
    if drifted.is_empty() {
        if args.check {
            println!(
                "contract data in {} is what the specs in {} give",
                args.out.display(),
                args.specs.display()
            );
        }
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "contract data differs from what the specs give: {}\nregenerate with: cargo run -p tollgate-fakes --bin contract-data -- --specs {}",
            drifted.join(", "),
            args.specs.display()
        );
        ExitCode::FAILURE
    }
}
