//! The `relgate` binary: everything lives in the library; this only hands over the exit code.

/// The process's allocator: jemalloc rather than the C library's malloc, wherever jemalloc
/// builds (not with MSVC, where the system allocator stays). Gate evaluation (regorus builds
/// and drops many small values per manifest) and ledger verification allocate and free small
/// objects on every rayon thread. Measured with profiling builds, alternated: `relgate record`
/// of 10,000 manifests 7.3-7.9 s wall, 10.3-11.5 user-s, 407 MiB peak RSS against 8.2-9.3 s,
/// 12.0-14.3 user-s and 471 MiB with glibc; `relgate verify` of 100,000 records with a commit
/// each 8.3-8.8 s against 9.2-9.6 s, the same memory. mimalloc, tried first, was as fast but
/// quadrupled verify's own memory on a 10,000-record ledger (about 55 MiB against 15).
/// Only the binary chooses; the library leaves the allocator to whoever links it.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> relgate::exit_status::ExitStatus {
    relgate::cli::main()
}
