/* The base64 alphabet: see base64.h. */

#include "base64.h"

char const base64_alphabet[65] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" ;

int base64_digit (unsigned char c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A' ;
  if (c >= 'a' && c <= 'z') return c - 'a' + 26 ;
  if (c >= '0' && c <= '9') return c - '0' + 52 ;
  if (c == '+') return 62 ;
  if (c == '/') return 63 ;
  return -1 ;
}
