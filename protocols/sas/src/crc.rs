//! SAS CRC: CRC-16/KERMIT (poly 0x1021 reflected as 0x8408, init 0, no final xor), appended LSB
//! first, covering the address through the last data byte. A frame with its CRC has residue 0.

/// CRC-16/KERMIT of `bytes`.
pub fn crc16_kermit(bytes: &[u8]) -> u16 {
    crc16_kermit_seeded(0, bytes)
}

/// CRC-16/KERMIT starting from `seed` (LP 21 ROM signatures use the host's seed).
pub fn crc16_kermit_seeded(seed: u16, bytes: &[u8]) -> u16 {
    bytes.iter().fold(seed, |crc, &byte| {
        let mut crc = crc ^ u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
        crc
    })
}

/// `bytes` followed by their CRC, LSB first.
pub fn with_crc(bytes: &[u8]) -> Vec<u8> {
    let crc = crc16_kermit(bytes);
    let mut frame = Vec::with_capacity(bytes.len() + 2);
    frame.extend_from_slice(bytes);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

/// Whether the last two bytes of `frame` are the CRC of the rest.
pub fn crc_ok(frame: &[u8]) -> bool {
    frame.len() >= 3 && crc16_kermit(frame) == 0
}
