// The console's bundle (ui/dist) is embedded by rust-embed; rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../../ui/dist");
}
