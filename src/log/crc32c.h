/*
 * crc32c.h - CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of
 * the durable log's blocks.  The same CRC as iSCSI, ext4 metadata and SSE4.2's crc32 instruction,
 * so a block can be checked by any tool that knows CRC-32C.
 *
 * Software only (slicing-by-8 over tables built once, thread-safe).  Pure: no I/O, no state
 * beyond the tables.
 */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* sli_crc32c extends crc (0 to start) with buf[0, len) and returns the CRC-32C of everything fed
 * so far, with the standard pre- and post-inversion handled inside: sli_crc32c(0, "123456789", 9)
 * is 0xE3069283, and sli_crc32c(sli_crc32c(0, a, n), b, m) is the CRC of a followed by b.
 * Any thread; buf may be NULL when len is 0. */
uint32_t sli_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
