# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS, cmake/packaging.cmake): runs on the
# staging tree of each package, after the install rules and before the .deb is made.
#  1. The systemd units move from usr/lib/systemd/system, where the install rules put them
#     under the /usr prefix, to lib/systemd/system, where Debian 12's packages ship them
#     (the same directory on its merged /usr, but dpkg knows a file by the path its
#     package names). Only the staging tree: `cmake --install` keeps them under its prefix.
#  2. The static libraries lose their debug info, as dh_strip does for Debian's -dev
#     packages: a fifth of the size, and no build-tree paths (DW_AT_comp_dir) in the
#     package. CPACK_STRIP_FILES strips only executables and shared libraries.
find_program(_kclpp_strip NAMES strip REQUIRED)
file(GLOB _kclpp_components LIST_DIRECTORIES true "${CPACK_TEMPORARY_DIRECTORY}/*")
foreach(_component IN LISTS _kclpp_components)
  set(_units "${_component}/usr/lib/systemd")
  if(IS_DIRECTORY "${_units}")
    file(MAKE_DIRECTORY "${_component}/lib")
    file(RENAME "${_units}" "${_component}/lib/systemd")
    file(GLOB _left "${_component}/usr/lib/*")
    if(NOT _left)
      file(REMOVE_RECURSE "${_component}/usr/lib")
    endif()
  endif()

  file(GLOB_RECURSE _archives "${_component}/*.a")
  foreach(_archive IN LISTS _archives)
    # -D: deterministic archive members (no timestamps, uid 0), as Debian builds them.
    execute_process(COMMAND "${_kclpp_strip}" --strip-debug -D "${_archive}" RESULT_VARIABLE _status)
    if(NOT _status EQUAL 0)
      message(FATAL_ERROR "strip --strip-debug ${_archive} failed: ${_status}")
    endif()
  endforeach()
endforeach()
