//! Reading a file that another thread is still appending to, like
//! `tail -f`, until the writer says it is done.

use std::{
    fs::File,
    io::{self, Read},
    path::PathBuf,
    time::Duration,
};

pub struct Follow<F: Fn() -> bool> {
    path: PathBuf,
    file: Option<File>,
    done: F,
}

impl<F: Fn() -> bool> Follow<F> {
    /// Follow `path`; `done()` tells when no more data will come.
    pub fn new(path: PathBuf, done: F) -> Self {
        Self {
            path,
            file: None,
            done,
        }
    }
}

impl<F: Fn() -> bool> Read for Follow<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.file.is_none() {
                match File::open(&self.path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !(self.done)() => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let file = self.file.as_mut().expect("opened above");
            // Check `done` before reading: data written before the writer
            // finished is then still read in full.
            let finished = (self.done)();
            let n = file.read(buf)?;
            if n > 0 || finished {
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        io::Write,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
    };

    #[test]
    fn reads_until_the_writer_is_done() {
        let dir = std::env::temp_dir().join(format!("ops-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let mut f = File::create(&writer_path).unwrap();
            for i in 0..5u8 {
                f.write_all(&[i; 100]).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            d.store(true, Ordering::SeqCst);
        });
        let mut out = Vec::new();
        Follow::new(path, || done.load(Ordering::SeqCst))
            .read_to_end(&mut out)
            .unwrap();
        writer.join().unwrap();
        assert_eq!(out.len(), 500);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
