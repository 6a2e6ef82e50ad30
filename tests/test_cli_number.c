/* Numbers from command-line arguments: whole argument, in range, lists without empty or
 * overlong items. */
#include <criterion/criterion.h>

#include "cli_number.h"

Test(cli_number, single_values)
{
    long v;
    uint32_t u;
    cr_assert(duet_parse_long("42", 0, 100, &v) && v == 42);
    cr_assert_not(duet_parse_long("42x", 0, 100, &v));
    cr_assert_not(duet_parse_long("", 0, 100, &v));
    cr_assert_not(duet_parse_long("101", 0, 100, &v));
    cr_assert_not(duet_parse_u32("-1", 0, 10, &u));
    cr_assert(duet_parse_u32("10", 0, 10, &u) && u == 10);
}

Test(cli_number, lists)
{
    uint32_t out[4];
    size_t n = 99;
    cr_assert(duet_parse_u32_list("1,2,4,8", 1, 64, out, 4, &n));
    cr_assert_eq(n, 4);
    cr_assert(out[0] == 1 && out[1] == 2 && out[2] == 4 && out[3] == 8);
    cr_assert(duet_parse_u32_list("32", 1, 64, out, 4, &n) && n == 1 && out[0] == 32);
    cr_assert_not(duet_parse_u32_list("1,2,4,8,16", 1, 64, out, 4, &n), "more than cap");
    cr_assert_not(duet_parse_u32_list("1,,2", 1, 64, out, 4, &n), "an empty item");
    cr_assert_not(duet_parse_u32_list("1,2,", 1, 64, out, 4, &n), "a trailing comma");
    cr_assert_not(duet_parse_u32_list("", 1, 64, out, 4, &n));
    cr_assert_not(duet_parse_u32_list("1,65", 1, 64, out, 4, &n), "out of range");
    cr_assert_not(duet_parse_u32_list("1,99999999999999999999999", 1, 64, out, 4, &n));
}
