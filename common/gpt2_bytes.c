#include "gpt2_bytes.h"

static int maps_to_itself(uint32_t b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 other bytes, in order: 0x00..0x20 (33), 0x7F..0xA0 (34), 0xAD (1). */
uint32_t duet_gpt2_byte_to_cp(uint8_t byte)
{
    uint32_t b = byte;
    if (maps_to_itself(b)) {
        return b;
    }
    if (b <= 0x20) {
        return 0x100 + b;
    }
    if (b >= 0x7F && b <= 0xA0) {
        return 0x100 + 33 + (b - 0x7F);
    }
    return 0x100 + 67; /* 0xAD */
}

int duet_gpt2_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) {
        return maps_to_itself(cp) ? (int)cp : -1;
    }
    if (cp < 0x100 + 33) {
        return (int)(cp - 0x100);
    }
    if (cp < 0x100 + 67) {
        return (int)(0x7F + (cp - 0x100 - 33));
    }
    if (cp == 0x100 + 67) {
        return 0xAD;
    }
    return -1;
}

size_t duet_gpt2_byte_utf8(uint8_t byte, char out[2])
{
    uint32_t cp = duet_gpt2_byte_to_cp(byte);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}
