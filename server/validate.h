/* validate: the formats werklabd accepts, shared by bodies, query keys and the command line. */
#ifndef WERKLAB_VALIDATE_H
#define WERKLAB_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* Characters (code points) in valid UTF-8. */
size_t validate_chars(const char *s);
/* len bytes at s are well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
bool validate_utf8(const char *s, size_t len);
/* YYYY-MM-DD, a real calendar date (at the start of s; the caller checks the length). */
bool validate_date(const char *s);
/* RFC 3339 date-time with seconds and an offset (Z or +hh:mm); fractions up to 9 digits. */
bool validate_timestamp(const char *s);
/* A plain ASCII address: local@domain.tld, at most 254 characters. */
bool validate_email(const char *s);
/* An absolute http or https URL without spaces or quotes. */
bool validate_url(const char *s);
/* A whole number written plainly (digits, an optional leading -; no spaces, no +) within
 * [min, max]; stores it in *out when out is not NULL. */
bool validate_whole(const char *s, long min, long max, long *out);
/* Digits, spaces, + - ( ), with at least 6 digits. */
bool validate_phone(const char *s);
/* The value of a hexadecimal digit (either case), or -1. */
int validate_hex_digit(char c);

#endif
