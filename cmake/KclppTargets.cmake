# Per-target defaults: C++20, warnings, -Werror when KCLPP_WERROR, sanitizers when
# KCLPP_SANITIZE is set. Applied to every kclpp target (libraries, tests, tools).
function(kclpp_target_defaults target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
  # The shared private helpers (internal/): a build-only dependency, so nothing of it
  # reaches the installed export.
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:kclpp_internal>)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    $<$<BOOL:${KCLPP_WERROR}>:-Werror>
    # GCC 12 at -O3 reports std::string's own copies as overlapping (-Wrestrict, GCC bug
    # 105329, fixed in 13): a warning, never an error.
    $<$<AND:$<CXX_COMPILER_ID:GNU>,$<VERSION_LESS:$<CXX_COMPILER_VERSION>,13>>:-Wno-error=restrict>)
  if(KCLPP_SANITIZE)
    string(REPLACE ";" "," _san "${KCLPP_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()
