/* cprog is the C program the coverage VM test builds with --coverage. */
#include <stdio.h>

int main(int argc, char **argv) {
	if (argc > 1)
		puts("with an argument");
	else
		puts("without");
	return 0;
}
