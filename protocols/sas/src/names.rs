//! What SAS meter and exception codes mean, by name: the one place the hub, its API, the console
//! and reports learn them from (reference §3.7 and §3.8, Table A-1).
//!
//! Invariant: every code has a name (unknown ones are `meter_0x..` / `exception_0x..`), so a
//! reader never sees a bare number it cannot look up, and names never change once published.

/// What a meter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeterUnit {
    /// Credits: money once multiplied by the machine's denomination.
    Credits,
    /// Cents (SAS's ticket and electronic amounts): money without a denomination.
    Cents,
    /// A count of things (games, bills, tickets).
    Count,
}

/// A meter's name and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterName {
    pub code: u8,
    pub name: &'static str,
    pub unit: MeterUnit,
}

use MeterUnit::{Cents, Count, Credits};

const METERS: &[(u8, &str, MeterUnit)] = &[
    (0x00, "coin_in", Credits),
    (0x01, "coin_out", Credits),
    (0x02, "jackpot", Credits),
    (0x03, "handpaid_cancelled_credits", Credits),
    (0x04, "cancelled_credits", Credits),
    (0x05, "games_played", Count),
    (0x06, "games_won", Count),
    (0x07, "games_lost", Count),
    (0x0C, "current_credits", Credits),
    (0x0D, "ticket_in_cents", Cents),
    (0x0E, "ticket_out_cents", Cents),
    (0x0F, "electronic_in_cents", Cents),
    (0x10, "electronic_out_cents", Cents),
    (0x15, "tickets_in", Count),
    (0x16, "tickets_out", Count),
    (0x24, "total_drop", Credits),
    (0x25, "games_since_power_up", Count),
    (0x26, "games_since_door_close", Count),
];

/// The name and unit of meter `code`.
pub fn meter(code: u8) -> MeterName {
    METERS
        .iter()
        .find(|(c, ..)| *c == code)
        .map(|&(code, name, unit)| MeterName { code, name, unit })
        .unwrap_or(MeterName {
            code,
            name: "",
            unit: Count,
        })
}

/// The name of meter `code` as text (`meter_0x..` when it has none here).
pub fn meter_name(code: u8) -> String {
    match meter(code).name {
        "" => format!("meter_0x{code:02x}"),
        name => name.to_owned(),
    }
}

/// The code of the meter called `name`.
pub fn meter_code(name: &str) -> Option<u8> {
    METERS.iter().find(|(_, n, _)| *n == name).map(|(c, ..)| *c)
}

/// Exception codes with a business meaning the hub acts on.
pub mod exception {
    pub const SLOT_DOOR_OPENED: u8 = 0x11;
    pub const SLOT_DOOR_CLOSED: u8 = 0x12;
    pub const AC_POWER_APPLIED: u8 = 0x17;
    pub const AC_POWER_LOST: u8 = 0x18;
    pub const GENERAL_TILT: u8 = 0x20;
    pub const BILL_ACCEPTED: u8 = 0x4F;
    pub const HANDPAY_PENDING: u8 = 0x51;
    pub const HANDPAY_RESET: u8 = 0x52;
    pub const CASHOUT_TICKET_PRINTED: u8 = 0x3D;
    pub const TICKET_INSERTED: u8 = 0x67;
    pub const TICKET_TRANSFERRED: u8 = 0x68;
    pub const BUFFER_OVERFLOW: u8 = 0x70;
    pub const SOFT_METERS_RESET: u8 = 0x7A;
    pub const GAME_STARTED: u8 = 0x7E;
    pub const GAME_ENDED: u8 = 0x7F;
    pub const SESSION_START: u8 = 0x9E;
    pub const SESSION_END: u8 = 0x9F;
}

const EXCEPTIONS: &[(u8, &str)] = &[
    (0x11, "slot_door_opened"),
    (0x12, "slot_door_closed"),
    (0x13, "drop_door_opened"),
    (0x14, "drop_door_closed"),
    (0x15, "card_cage_opened"),
    (0x16, "card_cage_closed"),
    (0x17, "ac_power_applied"),
    (0x18, "ac_power_lost"),
    (0x19, "cashbox_door_opened"),
    (0x1A, "cashbox_door_closed"),
    (0x1B, "cashbox_removed"),
    (0x1C, "cashbox_installed"),
    (0x1D, "belly_door_opened"),
    (0x1E, "belly_door_closed"),
    (0x1F, "waiting_for_player_input"),
    (0x20, "general_tilt"),
    (0x21, "coin_in_tilt"),
    (0x22, "coin_out_tilt"),
    (0x23, "hopper_empty"),
    (0x24, "extra_coin_paid"),
    (0x25, "diverter_malfunction"),
    (0x27, "cashbox_full"),
    (0x28, "bill_jam"),
    (0x29, "bill_acceptor_failure"),
    (0x2A, "reverse_bill"),
    (0x2B, "bill_rejected"),
    (0x2C, "counterfeit_bill"),
    (0x2D, "reverse_coin"),
    (0x2E, "cashbox_near_full"),
    (0x2F, "bill_acceptor_version_changed"),
    (0x31, "cmos_ram_error_data_recovered"),
    (0x32, "cmos_ram_error_no_data_recovered"),
    (0x33, "cmos_ram_error_bad_device"),
    (0x34, "eeprom_data_error"),
    (0x35, "eeprom_bad_device"),
    (0x36, "eprom_error_different_checksum"),
    (0x37, "eprom_error_bad_checksum"),
    (0x38, "partitioned_eprom_error_different_checksum"),
    (0x39, "partitioned_eprom_error_bad_checksum"),
    (0x3A, "memory_error_reset"),
    (0x3B, "low_backup_battery"),
    (0x3C, "operator_changed_options"),
    (0x3D, "cashout_ticket_printed"),
    (0x3E, "handpay_validated"),
    (0x3F, "validation_id_not_configured"),
    (0x40, "reel_tilt"),
    (0x41, "reel_1_tilt"),
    (0x42, "reel_2_tilt"),
    (0x43, "reel_3_tilt"),
    (0x44, "reel_4_tilt"),
    (0x45, "reel_5_tilt"),
    (0x46, "reel_mechanism_disconnected"),
    (0x47, "bill_accepted"),
    (0x48, "bill_accepted"),
    (0x49, "bill_accepted"),
    (0x4A, "bill_accepted"),
    (0x4B, "bill_accepted"),
    (0x4C, "bill_accepted"),
    (0x4D, "bill_accepted"),
    (0x4E, "bill_accepted"),
    (0x4F, "bill_accepted"),
    (0x50, "bill_accepted"),
    (0x51, "handpay_pending"),
    (0x52, "handpay_reset"),
    (0x53, "no_progressive_information"),
    (0x54, "progressive_win"),
    (0x55, "player_cancelled_handpay"),
    (0x56, "sas_progressive_level_hit"),
    (0x57, "system_validation_request"),
    (0x59, "non_sas_progressive_hit"),
    (0x5A, "jackpot_keyed_off_to_machine_pay"),
    (0x5F, "tip_awarded"),
    (0x60, "printer_communication_error"),
    (0x61, "printer_paper_out"),
    (0x66, "cashout_button_pressed"),
    (0x67, "ticket_inserted"),
    (0x68, "ticket_transfer_complete"),
    (0x69, "aft_transfer_complete"),
    (0x6A, "aft_request_host_cashout"),
    (0x6B, "aft_request_host_cashout_win"),
    (0x6C, "aft_registration_request"),
    (0x6D, "aft_registration_acknowledged"),
    (0x6E, "aft_registration_cancelled"),
    (0x6F, "game_locked"),
    (0x70, "exception_buffer_overflow"),
    (0x71, "change_lamp_on"),
    (0x72, "change_lamp_off"),
    (0x74, "printer_paper_low"),
    (0x75, "printer_power_off"),
    (0x76, "printer_power_on"),
    (0x77, "replace_printer_ribbon"),
    (0x78, "printer_carriage_jammed"),
    (0x79, "coin_in_lockout_malfunction"),
    (0x7A, "soft_meters_reset"),
    (0x7B, "bill_validator_totals_reset"),
    (0x7C, "legacy_bonus_pay_awarded"),
    (0x7E, "game_started"),
    (0x7F, "game_ended"),
    (0x80, "hopper_full"),
    (0x81, "hopper_level_low"),
    (0x82, "attendant_menu_entered"),
    (0x83, "attendant_menu_exited"),
    (0x84, "operator_menu_entered"),
    (0x85, "operator_menu_exited"),
    (0x86, "out_of_service_by_operator"),
    (0x87, "player_requested_draw_cards"),
    (0x88, "reel_stopped"),
    (0x89, "credit_wagered"),
    (0x8A, "game_recall_entry_displayed"),
    (0x8B, "card_held"),
    (0x8C, "game_selected"),
    (0x8E, "component_list_changed"),
    (0x8F, "authentication_complete"),
    (0x98, "power_off_card_cage_access"),
    (0x99, "power_off_slot_door_access"),
    (0x9A, "power_off_cashbox_door_access"),
    (0x9B, "power_off_drop_door_access"),
    (0x9E, "session_start"),
    (0x9F, "session_end"),
    (0xA0, "meter_change_pending"),
    (0xA1, "meter_change_cancelled"),
    (0xA2, "enabled_games_denominations_changed"),
];

/// The name of exception `code` (`exception_0x..` when it has none here).
pub fn exception_name(code: u8) -> String {
    EXCEPTIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| (*n).to_owned())
        .unwrap_or_else(|| format!("exception_0x{code:02x}"))
}

/// The bill value in whole dollars (the currency's major unit) of a bill-accepted exception that
/// names one (47–4E, 50, non-RTE); `None` for other codes and the generic 4F.
pub fn bill_value(code: u8) -> Option<u32> {
    match code {
        0x47 => Some(1),
        0x48 => Some(5),
        0x49 => Some(10),
        0x4A => Some(20),
        0x4B => Some(50),
        0x4C => Some(100),
        0x4D => Some(2),
        0x4E => Some(500),
        0x50 => Some(200),
        _ => None,
    }
}

/// The exception an EGM raises for a bill of `value` major units (4F, generic, when none names it).
pub fn bill_exception(value: u32) -> u8 {
    (0x47..=0x50)
        .find(|&code| bill_value(code) == Some(value))
        .unwrap_or(exception::BILL_ACCEPTED)
}

/// Whether exception `code` reports a bill accepted (named or generic).
pub fn is_bill(code: u8) -> bool {
    (0x47..=0x50).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_name_a_reader_can_look_up() {
        for code in 0..=255u8 {
            assert!(!exception_name(code).is_empty());
            assert!(!meter_name(code).is_empty());
        }
        assert_eq!(exception_name(0x51), "handpay_pending");
        assert_eq!(exception_name(0x58), "exception_0x58");
        assert_eq!(meter_name(0x00), "coin_in");
        assert_eq!(meter_name(0x99), "meter_0x99");
    }

    #[test]
    fn meter_names_are_unique_and_map_back_to_their_codes() {
        for &(code, name, _) in METERS {
            assert_eq!(meter_code(name), Some(code));
        }
    }

    #[test]
    fn bills_name_their_value_and_the_generic_one_does_not() {
        assert_eq!(bill_value(0x4A), Some(20));
        assert_eq!(bill_value(0x50), Some(200));
        assert_eq!(bill_value(0x4F), None);
        for value in [1, 2, 5, 10, 20, 50, 100, 200, 500] {
            assert_eq!(bill_value(bill_exception(value)), Some(value));
        }
        assert_eq!(bill_exception(3), exception::BILL_ACCEPTED);
        assert!(is_bill(0x4F) && is_bill(0x47) && !is_bill(0x51));
    }
}
