# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS, cmake/packaging.cmake): in the staging
# tree of each package, moves the systemd units from usr/lib/systemd/system, where the
# install rules put them under the /usr prefix, to lib/systemd/system, where Debian 12's
# packages ship them. A staging tree without units is left alone.
file(GLOB _kclpp_components LIST_DIRECTORIES true "${CPACK_TEMPORARY_DIRECTORY}/*")
foreach(_component IN LISTS _kclpp_components)
  set(_from "${_component}/usr/lib/systemd")
  if(IS_DIRECTORY "${_from}")
    file(MAKE_DIRECTORY "${_component}/lib")
    file(RENAME "${_from}" "${_component}/lib/systemd")
    # usr/lib stays only if something else lives there (the -dev package's libraries do).
    file(GLOB _left "${_component}/usr/lib/*")
    if(NOT _left)
      file(REMOVE_RECURSE "${_component}/usr/lib")
    endif()
  endif()
endforeach()
