#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    give_back_freed_memory();
    weir_pipeline::cli::main()
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
