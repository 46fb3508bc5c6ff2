//! Starts the test desktop for a person: prints the environment to export, then waits until
//! Ctrl-C (or stdin closes) and stops everything it started.

use std::io::Read;

fn main() -> anyhow::Result<()> {
    let desk = vigil_e2e::TestDesktop::start()?;
    for (k, v) in desk.env() {
        println!("export {k}='{v}'");
    }
    println!(
        "# sinks: caller (system audio = caller.monitor), micfeed -> source mic (the microphone)"
    );
    println!("# play:  paplay -d caller tone.wav ; paplay -d micfeed speech.wav");
    println!("# stop:  press Enter or Ctrl-D here");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    drop(desk);
    Ok(())
}
