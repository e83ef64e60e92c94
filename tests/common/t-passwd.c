/* t-passwd: common/passwd.c, the users/passwd line format shared by
 * yubin-checkpassword (reader) and yubin-users (writer). */

#include <stdio.h>
#include <string.h>

#include "passwd.h"

static int failed ;

static void check (char const *name, int ok)
{
  printf("%s %s\n", ok ? "PASS" : "FAIL", name) ;
  if (!ok) failed = 1 ;
}

static int parse (char const *s, struct passwd_entry *e, char const **why)
{
  *why = 0 ;
  return passwd_parse_line(s, strlen(s), 0, e, why) ;
}

static int field (char const *s, size_t off, size_t len, char const *want)
{
  return len == strlen(want) && !memcmp(s + off, want, len) ;
}

int main (void)
{
  struct passwd_entry e ;
  char const *why ;
  char const *ok = "alice:$scrypt$x:1000:100:/home/alice smith\nbob:..." ;
  check("passwd-line", parse(ok, &e, &why) == 1 && e.uid == 1000 && e.gid == 100
        && field(ok, e.name, e.namelen, "alice") && field(ok, e.hash, e.hashlen, "$scrypt$x")
        && field(ok, e.home, e.homelen, "/home/alice smith") && e.linelen == strlen("alice:$scrypt$x:1000:100:/home/alice smith")) ;
  char const *crlf = "alice:*:1:2:/h\r\n" ;
  check("passwd-crlf", parse(crlf, &e, &why) == 1 && field(crlf, e.home, e.homelen, "/h")) ;
  char const *colon = "alice:*:1:2:/a:b" ;
  check("passwd-home-rest-of-line", parse(colon, &e, &why) == 1 && field(colon, e.home, e.homelen, "/a:b")) ;
  check("passwd-uppercase-name", parse("Alice:*:1:2:/h", &e, &why) == 1) ;
  check("passwd-comment", parse("  # x:y", &e, &why) == 0 && parse("", &e, &why) == 0 && parse(" \t\r\n", &e, &why) == 0) ;
  check("passwd-few-fields", parse("alice:*:1:2", &e, &why) < 0 && why) ;
  check("passwd-bad-uid", parse("alice:*:x:2:/h", &e, &why) < 0 && !strcmp(why, "bad uid")) ;
  check("passwd-uid-overflow", parse("alice:*:99999999999:2:/h", &e, &why) < 0) ;
  check("passwd-bad-gid", parse("alice:*:1::/h", &e, &why) < 0 && !strcmp(why, "bad gid")) ;
  check("passwd-relative-home", parse("alice:*:1:2:h", &e, &why) < 0) ;
  check("passwd-empty-hash", parse("alice::1:2:/h", &e, &why) < 0) ;
  check("passwd-bad-name", parse("a/b:*:1:2:/h", &e, &why) < 0 && parse("..:*:1:2:/h", &e, &why) < 0
        && parse("-x:*:1:2:/h", &e, &why) < 0) ;
  char nul[] = "alice:*:1:2:/h\0x" ;
  check("passwd-nul", passwd_parse_line(nul, sizeof(nul) - 1, 0, &e, &why) < 0) ;
  char const *two = "# c\nbob:*:3:4:/b\n" ;
  check("passwd-offset", parse(two, &e, &why) == 0 && e.linelen == 3
        && passwd_parse_line(two, strlen(two), 4, &e, &why) == 1 && field(two, e.name, e.namelen, "bob")) ;
  check("passwd-name-rules", !passwd_name_problem("a.b_c-1", 7) && passwd_name_problem("a..b", 4)
        && passwd_name_problem("", 0) && passwd_name_problem("A", 1)) ;
  return failed ;
}
