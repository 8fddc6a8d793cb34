/*
 * version.c - which sluice this is: the release (CMake's project version) and the git commit
 * the binary was built from (cmake/revision.cmake writes it at every build).
 */
#include "sluice/sluice.h"
#include <sluice_revision.h> /* generated at build time: cmake/revision.cmake */

SL_API const char *sl_version(void)
{
	return SLUICE_VERSION;
}

SL_API const char *sl_revision(void)
{
	return SLUICE_REVISION;
}
