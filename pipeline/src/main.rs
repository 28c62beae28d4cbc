#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    give_back_freed_memory();
    weir_pipeline::cli::main()
}

/// Where the kernel backs memory with transparent huge pages (`always`, as on this machine),
/// every purge of freed memory (below) splits a 2 MiB page and the next allocation there faults
/// in and zeroes a whole new one: the event path spent a sixth of its CPU zeroing pages and peaked
/// at 330 MB instead of 115 MB, at two thirds of the throughput (benches/RESULTS.md). Media and
/// inference run no slower on 4 KiB pages. Asked of the kernel for this process only; a kernel
/// without the flag leaves things as they were.
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory map.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc hands freed pages back to the operating system only after a delay (`purge_delay`,
/// 1 s) and only when some thread next calls into it; after a burst of large decodes an idle
/// server would keep every page it touched. The C and C++ libraries (libjpeg-turbo, libwebp,
/// onnxruntime, FFmpeg) allocate through glibc's malloc, which keeps freed memory at the top of
/// its heaps until asked. A thread that asks both once a second gives a burst's memory back
/// within seconds.
fn give_back_freed_memory() {
    let purger = std::thread::Builder::new()
        .name("weir-mem-purge".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                // SAFETY: mi_collect only walks mimalloc's own structures and may be called
                // from any thread at any time.
                unsafe { libmimalloc_sys::mi_collect(false) };
                // SAFETY: malloc_trim takes glibc's own locks and may be called at any time.
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
    if let Err(e) = purger {
        eprintln!("weir: cannot start the memory purge thread ({e}); freed memory returns later");
    }
}
