//! Giving up privilege: every capability, for good. Used by the jail (after it has built
//! itself) and by the worker's git helper (which runs as root only to own the session's files,
//! and needs no capability for that).

/// Drops every capability from the bounding set and clears the ambient set: nothing this
/// process or its children exec can get a capability back.
pub fn drop_bounding_and_ambient() -> std::io::Result<()> {
    drop_bounding_and_ambient_but(&[])
}

/// Like [`drop_bounding_and_ambient`], keeping `keep` in the bounding set.
fn drop_bounding_and_ambient_but(keep: &[u32]) -> std::io::Result<()> {
    for cap in (0..=63).filter(|cap| !keep.contains(cap)) {
        // SAFETY: prctl with integer arguments only; EINVAL for capabilities the kernel does not
        // know is expected and ignored.
        #[expect(unsafe_code, reason = "raw prctl, see the SAFETY comment")]
        let dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if dropped != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: as above, integer arguments only.
    #[expect(unsafe_code, reason = "raw prctl, see the SAFETY comment")]
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if cleared != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Empties the effective, permitted and inheritable sets.
pub fn clear_capability_sets() -> std::io::Result<()> {
    set_capability_sets(&[])
}

/// Sets the effective and permitted sets to exactly `keep` (inheritable: none).
fn set_capability_sets(keep: &[u32]) -> std::io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    for cap in keep.iter().filter(|cap| **cap < 64) {
        let (word, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
        data[word].effective |= bit;
        data[word].permitted |= bit;
    }
    // SAFETY: `header` and `data` are valid for the kernel to read (version 3 takes two data
    // structs) and live across the call.
    #[expect(unsafe_code, reason = "raw capset, see the SAFETY comment")]
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Every capability gone but those that override file permissions (`CAP_DAC_OVERRIDE`,
/// `CAP_DAC_READ_SEARCH`, `CAP_FOWNER`), and `no_new_privs`: root's power over files — which
/// Landlock then limits to the paths a job names — and none over the machine (no modules,
/// mounts, signals to others, raw sockets, …).
pub fn keep_file_access_only() -> std::io::Result<()> {
    const FILE_ACCESS: [u32; 3] = [1, 2, 3];
    drop_bounding_and_ambient_but(&FILE_ACCESS)?;
    set_capability_sets(&FILE_ACCESS)?;
    nix::sys::prctl::set_no_new_privs().map_err(std::io::Error::from)
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
