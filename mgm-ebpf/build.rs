// Rebuild when bpf-linker changes (a new LLVM can change the object). The path is found
// without extra crates: PATH is scanned by hand.
fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("bpf-linker");
            if candidate.is_file() {
                println!("cargo:rerun-if-changed={}", candidate.display());
                break;
            }
        }
    }
}
