#include "validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

size_t validate_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

bool validate_utf8(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = u[i] >= 0xf0 && u[i] <= 0xf4   ? 4
                   : u[i] >= 0xe0 && u[i] <= 0xef ? 3
                   : u[i] >= 0xc2 && u[i] <= 0xdf ? 2
                                                  : 0;
        if (n == 0 || n > len - i)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((u[i + k] & 0xc0) != 0x80)
                return false;
        if ((u[i] == 0xe0 && u[i + 1] < 0xa0) || (u[i] == 0xed && u[i + 1] >= 0xa0) ||
            (u[i] == 0xf0 && u[i + 1] < 0x90) || (u[i] == 0xf4 && u[i + 1] >= 0x90))
            return false;
        i += n;
    }
    return true;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool validate_date(const char *s)
{
    if (strlen(s) < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

bool validate_timestamp(const char *s)
{
    if (!validate_date(s) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    if (atoi(s + 11) > 23 || atoi(s + 14) > 59 || atoi(s + 17) > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        while (isdigit((unsigned char)p[1 + n]))
            n++;
        if (n == 0 || n > 9)
            return false;
        p += 1 + n;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) &&
           p[6] == '\0' && atoi(p + 1) <= 23 && atoi(p + 4) <= 59;
}

bool validate_email(const char *s)
{
    const char *at = strchr(s, '@');
    size_t len = strlen(s);
    if (!at || strchr(at + 1, '@') || len > 254 || at == s || at - s > 64)
        return false;
    for (const char *p = s; p < at; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".!#$%&'*+/=?^_`{|}~-", *p))
            return false;
    if (s[0] == '.' || at[-1] == '.' || strstr(s, ".."))
        return false;
    const char *domain = at + 1;
    int labels = 0;
    for (const char *p = domain; *p;) {
        const char *end = p;
        while (*end && *end != '.')
            end++;
        size_t n = (size_t)(end - p);
        if (n == 0 || n > 63 || p[0] == '-' || end[-1] == '-')
            return false;
        for (const char *q = p; q < end; q++)
            if (!isalnum((unsigned char)*q) && *q != '-')
                return false;
        labels++;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return false; /* a trailing dot */
    }
    return labels >= 2;
}

bool validate_url(const char *s)
{
    const char *host = strncmp(s, "https://", 8) == 0  ? s + 8
                       : strncmp(s, "http://", 7) == 0 ? s + 7
                                                       : NULL;
    if (!host || !isalnum((unsigned char)*host))
        return false;
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' ||
            *p == '\\')
            return false;
    return true;
}

bool validate_phone(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++) {
        if (isdigit((unsigned char)*p))
            n++;
        else if (!strchr(" +-()", *p))
            return false;
    }
    return n >= 6;
}

bool validate_whole(const char *s, long min, long max, long *out)
{
    size_t n = strlen(s);
    bool negative = n > 1 && s[0] == '-';
    if (n == 0 || n > 18 || strspn(s + negative, "0123456789") != n - negative)
        return false;
    long v = strtol(s, NULL, 10);
    if (v < min || v > max)
        return false;
    if (out)
        *out = v;
    return true;
}

int validate_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
