// SPDX-License-Identifier: GPL-2.0
/*
 * nothing: exits at once.  Built static, it is `make bench`'s fork+exec workload: the cost of
 * an exec with no dynamic loader and no library to open.
 */
int main(void)
{
	return 0;
}
