//! Sinks: a function's artifacts written under their output keys, with the provenance of the
//! object version they were made from, before the consumer acknowledges its event
//! (`dispatch.rs`). Artifacts handed on early are written while the function still runs.

use weir_functions::{FnError, Input};
use weir_workers::Admission;

use crate::dispatch::Consumer;
use crate::store::provenance::Provenance;
use crate::store::{Metadata, PutOptions, StoreError, StoreErrorKind};

/// Each artifact under its template key, with the provenance of `etag`.
pub(crate) async fn write_outputs(
    c: &Consumer,
    object: &crate::events::ObjectRef,
    etag: &str,
    output: weir_functions::Output,
) -> Result<(), FnError> {
    let mut w = Outputs::new(c, object, etag);
    for a in output.artifacts {
        w.write(a).await?;
    }
    Ok(())
}

/// Runs `input` and writes its outputs: those the function hands on early (`Early::offer`) while
/// it runs, the rest after. A failed early write fails the attempt, as a failed late one does.
pub(crate) async fn run_and_write(
    c: &Consumer,
    admission: Admission,
    mut input: Input,
    object: &crate::events::ObjectRef,
    etag: &str,
) -> Result<(), FnError> {
    if c.output.is_none() {
        admission.run(input).await?;
        return Ok(());
    }
    let (early, mut handed) = weir_functions::Early::channel(EARLY_ROOM);
    input.early = Some(early);
    let mut w = Outputs::new(c, object, etag);
    let run = admission.run(input);
    tokio::pin!(run);
    let (mut open, mut failed) = (true, None);
    let output = loop {
        tokio::select! {
            output = &mut run => break output,
            a = handed.recv(), if open => match a {
                Some(a) => if let Err(e) = w.write(a).await {
                    // What is handed from now on stays in the output, unwritten.
                    failed = Some(e);
                    open = false;
                    handed.close();
                },
                None => open = false,
            },
        }
    };
    handed.close();
    let output = output?;
    if let Some(e) = failed {
        return Err(e);
    }
    while let Ok(a) = handed.try_recv() {
        w.write(a).await?;
    }
    for a in output.artifacts {
        w.write(a).await?;
    }
    Ok(())
}

/// How many artifacts a function may hand on ahead of their writes; past it they wait in its
/// output instead.
const EARLY_ROOM: usize = 8;

/// Writes one function's artifacts for one object: each under its template key, with the
/// provenance of `etag` (made once, and only for a function that writes something).
struct Outputs<'a> {
    c: &'a Consumer,
    object: &'a crate::events::ObjectRef,
    etag: &'a str,
    metadata: Option<Metadata>,
}

impl<'a> Outputs<'a> {
    fn new(c: &'a Consumer, object: &'a crate::events::ObjectRef, etag: &'a str) -> Self {
        Outputs {
            c,
            object,
            etag,
            metadata: None,
        }
    }

    async fn write(&mut self, a: weir_functions::Artifact) -> Result<(), FnError> {
        let Some((bucket, template)) = &self.c.output else {
            return Ok(());
        };
        let (c, object) = (self.c, self.object);
        let metadata = self.metadata.get_or_insert_with(|| {
            Provenance {
                bucket: &object.bucket,
                key: &object.key,
                etag: self.etag,
                function: &c.function,
                spec_hash: &c.spec_hash,
            }
            .metadata()
        });
        let key = template
            .render_for(&a, &object.bucket, &object.key)
            .map_err(|e| FnError::bad_input(format!("output key: {e}")))?;
        let options = PutOptions {
            content_type: Some(a.content_type.clone()),
            metadata: metadata.clone(),
        };
        c.store
            .put(bucket, &key, a.bytes.into(), &options)
            .await
            .map_err(write_error)?;
        Ok(())
    }
}

/// A failed write: a key the store cannot hold or refused credentials fail the same way every
/// time; a missing output bucket may be created meanwhile.
fn write_error(e: StoreError) -> FnError {
    match e.kind() {
        StoreErrorKind::BadRequest | StoreErrorKind::Denied | StoreErrorKind::TooLarge => {
            FnError::bad_input(format!("writing an output: {e}"))
        }
        StoreErrorKind::NotFound | StoreErrorKind::Transient => {
            FnError::transient(format!("writing an output: {e}"))
        }
    }
}
