//! The CMOS real-time clock, read once at boot for the guests' wallclock
//! (`shared_info.wc_sec`). Mirrors Xen 4.17's `get_cmos_time()`
//! (`xen/arch/x86/time.c`): wait for no update in progress, read the fields,
//! decode BCD unless status B says binary, 12-hour mode, century from register
//! 0x32 when it holds a plausible value, else 20xx.

use x86_64::instructions::port::Port;

const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;

fn cmos(reg: u8) -> u8 {
    let mut idx = Port::<u8>::new(CMOS_INDEX);
    let mut data = Port::<u8>::new(CMOS_DATA);
    // SAFETY: ports 0x70/0x71 are the PC's CMOS index/data pair; selecting a
    // register and reading it changes nothing (bit 7, NMI disable, stays clear).
    unsafe {
        idx.write(reg & 0x7f);
        data.read()
    }
}

fn bcd(v: u8) -> u32 {
    u32::from(v & 0x0f) + u32::from(v >> 4) * 10
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch now, from the RTC; `None` if it reads nonsense.
pub fn unix_time() -> Option<u64> {
    // Wait (bounded) until no update is in progress (status A bit 7).
    for _ in 0..1_000_000 {
        if cmos(0x0a) & 0x80 == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    let raw = [
        cmos(0x00),
        cmos(0x02),
        cmos(0x04),
        cmos(0x07),
        cmos(0x08),
        cmos(0x09),
    ];
    let status_b = cmos(0x0b);
    let century_raw = cmos(0x32);
    let binary = status_b & 0x04 != 0;
    let dec = |v: u8| if binary { u32::from(v) } else { bcd(v) };
    let sec = dec(raw[0]);
    let min = dec(raw[1]);
    let pm = raw[2] & 0x80 != 0;
    let mut hour = dec(raw[2] & 0x7f);
    if status_b & 0x02 == 0 {
        // 12-hour mode: 12 AM is 0, 12 PM is 12.
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = dec(raw[3]);
    let month = dec(raw[4]);
    let year2 = dec(raw[5]);
    let century = match dec(century_raw) {
        c @ 19..=21 => c,
        _ => 20,
    };
    if sec > 59 || min > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let year = i64::from(century * 100 + year2);
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec);
    u64::try_from(secs).ok()
}
