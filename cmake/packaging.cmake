# Debian packages built by CPack from a build tree (`make package`; docs/operations.md §4):
#   kclpp      the `kclpp` tool, the systemd units kclpp-daemon@ and kclpp-store@, README,
#              copyright and example configuration (install component "runtime");
#   kclpp-dev  the static libraries, headers and CMake package files of find_package(kclpp)
#              (component "dev", the default component of every other install rule).
# Included from the top-level CMakeLists.txt after the modules' install rules. A plain
# `cmake --install build --prefix P` installs both components under P, units included
# (P/lib/systemd/system), so the install stays relocatable.

set(KCLPP_PACKAGE_MAINTAINER "kclpp <dev@kclpp.invalid>" CACHE STRING
    "Maintainer field of the Debian packages (name <email>)")
set(KCLPP_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the packages (the part after the '-')")

# --- the runtime package's files ----------------------------------------------------------
set(_kclpp_units ${PROJECT_SOURCE_DIR}/packaging/systemd/kclpp-daemon@.service
                 ${PROJECT_SOURCE_DIR}/packaging/systemd/kclpp-store@.service)
install(FILES ${_kclpp_units} DESTINATION lib/systemd/system COMPONENT runtime)
install(FILES README.md packaging/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(FILES packaging/examples/app.properties packaging/examples/store-NAME.env
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT runtime)
# The notes the README, the units and the error messages cite (docs/... §N).
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT runtime
        FILES_MATCHING PATTERN "*.md")
# Debian wants a copyright file in every package's own doc directory.
install(FILES packaging/debian/copyright DESTINATION share/doc/kclpp-dev COMPONENT dev)

# --- CPack --------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kclpp)
set(CPACK_PACKAGE_VENDOR kclpp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${KCLPP_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The build tree is RelWithDebInfo (-O2, as Debian builds); the packages carry no debug info.
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # kclpp_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE ${KCLPP_PACKAGE_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${KCLPP_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)  # xz takes several times longer on the static libraries

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME kclpp)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
# Depends from the libraries the binary really links (dpkg-shlibdeps).
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# Descriptions: the first line is the synopsis; CPack indents the others by one space.
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
    "Amazon Kinesis consumer daemon and tools (no JVM)
kclpp daemon replaces the Java KCL MultiLangDaemon for any multilang record processor
(amazon-kclpy, aws-kcl for Node, kclpp processors): it reads the same properties file,
reads the shards natively and keeps checkpoints and leases in SQLite, Postgres or the
Java KCL's DynamoDB lease table. The kclpp tool also puts, gets and lists records and
runs the Triton pipeline tools (spoold, store to S3, cat, stats). Includes the systemd
units kclpp-daemon@.service and kclpp-store@.service.")
# Reload the units after install and removal; restart the instances after an upgrade.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME kclpp-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# Static libraries: nothing for dpkg-shlibdeps. A consumer's link needs what
# kclppConfig.cmake find_dependency()s (cmake/kclppConfig.cmake.in), one Debian -dev
# package each; cppzmq-dev brings libzmq3-dev, msgpack-cxx is private to the .a files.
# The test (tests/package/check.sh) checks this list against the files a consumer's
# build really finds.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "kclpp (= ${PROJECT_VERSION}-${KCLPP_PACKAGE_RELEASE}), libsimdjson-dev, libcurl4-openssl-dev | libcurl-dev, libssl-dev, nlohmann-json3-dev, libexpat1-dev, zlib1g-dev, libsqlite3-dev, libpq-dev, libyaml-cpp-dev, libsnappy-dev, cppzmq-dev, libzmq3-dev, libsystemd-dev, libcpp-httplib-dev, pkg-config")
set(CPACK_DEBIAN_DEV_DESCRIPTION
    "C++20 SDK for Amazon Kinesis record processing (development files)
Static libraries, headers and CMake package files (find_package(kclpp)) of kclpp:
kclpp::processor (the record processor API), kclpp::kcl (the MultiLangDaemon protocol,
both sides), kclpp::aws (Kinesis, DynamoDB, S3 and STS clients), kclpp::native (the
native shard reader, checkpoint and lease stores), kclpp::pipeline (Triton tools) and
kclpp::app (kclpp::main, one entry point for all three modes).")

# The staging tree before the .deb: units to /lib/systemd/system, static libraries
# without debug info (see there).
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/packaging/stage-fixups.cmake)

include(CPack)
